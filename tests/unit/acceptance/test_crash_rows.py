"""The crash rows of the matrix (`crash_scenarios`): one per device and crash point, each with the link faults that
are the bench's eyes at its point, and the capability it needs."""

from harness.acceptance.crash import crash_faults
from harness.acceptance.matrix import crash_scenarios, power_cut_scenarios, scenarios
from harness.acceptance.scenario import missing_capabilities


class TillWithout:
    """A till that cannot be killed and restarted by posrig (no `lifecycle`)."""

    def capabilities(self):
        return frozenset({"journal", "recover", "abort"})


def test_every_crash_point_is_a_row_of_the_matrix():
    rows = crash_scenarios(0.05)
    ids = [s.id for s in rows]
    assert len(ids) == len(set(ids)) == 14
    assert set(ids) <= {s.id for s in scenarios(0.05)}
    assert ids[:2] == [s.id for s in power_cut_scenarios()]
    assert {s.id.split("/")[1] for s in rows if s.link == "till"} == {
        "power-cut-authorizing", "power-cut-request", "power-cut-card-wait", "power-cut-result",
        "power-cut-mid-receipt", "power-cut-after-receipt"}
    assert [s.id for s in rows if s.link != "till"] == [
        "printer/power-cycle-during/approve", "terminal/restart-online/approve", "terminal/restart-result/approve",
        "terminal/restart-completion/approve"]


def test_only_the_till_power_cuts_need_a_till_posrig_can_kill():
    for s in crash_scenarios(0.05):
        assert s.needs == (("lifecycle",) if s.link == "till" else ()), s.id


def test_a_till_posrig_cannot_kill_misses_only_the_till_power_cuts():
    missing = {s.id: missing_capabilities(TillWithout(), s) for s in crash_scenarios(0.05)}
    assert {k for k, v in missing.items() if v} == {k for k in missing if k.startswith("till/")}
    assert all(v in ([], ["lifecycle"]) for v in missing.values())


def test_what_must_stand_after_the_crash():
    paid = {s.id: s.expect_paid for s in crash_scenarios(0.05)}
    assert paid["till/power-cut-request/approve"] is False                 # the request never arrived
    assert paid["till/power-cut-result/approve"] is True                   # booked before the cut
    assert paid["till/power-cut-card-wait/approve"] is None                # the terminal's `unconfirmed` decides
    assert paid["terminal/restart-online/approve"] is False                # reversed on boot
    assert paid["terminal/restart-completion/approve"] is True
    assert all(v is False for k, v in paid.items() if k.endswith("/decline"))


def test_the_bench_watches_the_wire_where_the_point_is_on_it():
    def described(crash, outcome="approve"):
        return [f.spec.describe() for f in crash_faults(crash, outcome, 0.05)]

    assert described("till:request") == ["rst zvt:06 01 till->terminal first to=receiver"]
    assert described("till:result") == ["hold zvt:06 0F terminal->till first ms=375.0"]
    assert described("till:result", "decline") == ["hold zvt:06 1E terminal->till first ms=375.0"]
    assert described("terminal:completion") == ["drop zvt:06 0F terminal->till first"]
    assert described("till:mid-receipt") == [] and described("printer:power-cycle") == []
    assert all(f.linger == 0 for s in crash_scenarios(1.0) for f in s.faults)   # the crash step clears them
