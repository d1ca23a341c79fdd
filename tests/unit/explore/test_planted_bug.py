"""The planted compound-fault bug decides from the kind of query failure: a reset of the query's request voids
the sale (the mistake); a query that timed out, or a reset after the terminal acknowledged, is asked again."""

from harness.reference_till.ecr_client import AckTimeout, NotStarted, ResultLost
from harness.reference_till.profiles import PROFILES, Correct, ResetVoidsSale
from harness.reference_till.register import SaleRun


class Till:
    def __init__(self):
        self.finished = []

    def finish(self, run, status, info, *, message="", terminal_result=None):
        self.finished.append((status, message))


def raised(exc, cause):
    try:
        raise exc from cause
    except Exception as caught:  # noqa: BLE001 - built with its cause, as the ECR client raises it
        return caught


def test_a_reset_query_request_voids_the_sale_only_in_the_planted_profile():
    reset = raised(NotStarted("05 01 status enquiry: no acknowledgement"), ConnectionResetError(104, "reset"))
    for cls, decided in ((ResetVoidsSale, True), (Correct, False)):
        till = Till()
        assert cls(till).on_query_failed(SaleRun("T1-1", 488, "card"), reset, "result lost") is decided
        assert [s for s, _ in till.finished] == (["failed"] if decided else [])


def test_timeouts_and_late_resets_are_asked_again():
    till = Till()
    bug = ResetVoidsSale(till)
    run = SaleRun("T1-1", 488, "card")
    assert not bug.on_query_failed(run, AckTimeout("05 01: no acknowledgement within T3"), "result lost")
    late = raised(ResultLost("connection lost before the result"), ConnectionResetError(104, "reset"))
    assert not bug.on_query_failed(run, late, "result lost")
    assert not till.finished and PROFILES["reset-voids-sale"] is ResetVoidsSale


def test_a_query_timing_out_after_a_reset_result_is_asked_again():
    """The query runs inside the handler of a result lost to a reset: that reset is its context, not its cause."""
    till = Till()
    try:
        try:
            raise raised(ResultLost("connection to the terminal lost"), ConnectionResetError(104, "reset"))
        except ResultLost:
            raise NotStarted("cannot connect to the terminal's ECR port: timed out") from TimeoutError()
    except NotStarted as timed_out:
        assert not ResetVoidsSale(till).on_query_failed(SaleRun("T1-1", 488, "card"), timed_out, "result lost")
    assert not till.finished
