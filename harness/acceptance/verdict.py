"""The verdict of one acceptance scenario (or test): what a sign-off reads.

>>> Verdict.worst([Verdict.OK, Verdict.INCONCLUSIVE]), Verdict("FAIL").passed
(<Verdict.INCONCLUSIVE: 'INCONCLUSIVE'>, False)
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Verdict(StrEnum):
    OK = "OK"                          # ran, its faults hit their stages, every invariant held
    FAIL = "FAIL"                      # an invariant or the expected outcome was broken: the till is at fault
    ERROR = "ERROR"                    # the scenario could not run to its end (the harness or the bench failed)
    INCONCLUSIVE = "INCONCLUSIVE"      # ran, but a fault never hit its stage: nothing was proved

    @property
    def passed(self) -> bool:
        return self is Verdict.OK

    @classmethod
    def worst(cls, verdicts: Iterable[Verdict | str]) -> Verdict:
        """The verdict a group of scenarios gets: the worst of theirs (OK for none)."""
        found = {cls(v) for v in verdicts}
        return next((v for v in WORST_FIRST if v in found), cls.OK)


WORST_FIRST: tuple[Verdict, ...] = (Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.OK)
