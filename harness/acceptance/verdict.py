"""The verdict of one acceptance scenario (or test): what a sign-off reads.

>>> Verdict.worst([Verdict.OK, Verdict.INCONCLUSIVE]), Verdict("FAIL").passed
(<Verdict.INCONCLUSIVE: 'INCONCLUSIVE'>, False)
>>> Verdict.worst([Verdict.OK, Verdict.NOT_APPLICABLE]), Verdict.NOT_APPLICABLE.passed
(<Verdict.OK: 'OK'>, False)
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Verdict(StrEnum):
    OK = "OK"                          # ran, its faults hit their stages, every invariant held
    FAIL = "FAIL"                      # an invariant or the expected outcome was broken: the till is at fault
    ERROR = "ERROR"                    # the scenario could not run to its end (the harness or the bench failed)
    INCONCLUSIVE = "INCONCLUSIVE"      # ran, but a fault never hit its stage: nothing was proved
    NOT_APPLICABLE = "NOT_APPLICABLE"  # not run: it needs something the till cannot do (e.g. abort a sale)

    @property
    def passed(self) -> bool:
        return self is Verdict.OK

    @classmethod
    def worst(cls, verdicts: Iterable[Verdict | str]) -> Verdict:
        """The verdict a group of scenarios gets: the worst of theirs (OK for none)."""
        found = {cls(v) for v in verdicts}
        return next((v for v in WORST_FIRST if v in found), cls.OK)


# Not applicable ranks after OK: a group where some scenarios ran and passed and others could not apply is OK
# for what it covers (the report lists what it does not).
WORST_FIRST: tuple[Verdict, ...] = (Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.OK,
                                    Verdict.NOT_APPLICABLE)
