"""Crash points of the emulated printer: an action at an exact receipt byte or right after a cut (the client that
lost power sends nothing more that counts), and the printer's own power cycle mid-receipt."""

from __future__ import annotations

import pytest

from harness.printer.core import PowerOff, PrinterCore, receipt_bytes

STATUS = b"\x10\x04\x01"


class Client:
    """One connection's reply channel (the printer tells clients apart by it)."""

    def __init__(self):
        self.got = b""

    def __call__(self, data: bytes) -> None:
        self.got += data


def test_receipt_bytes_leave_out_status_requests():
    assert receipt_bytes(STATUS + b"AB" + b"\x10\x04\x04" + b"C") == 3
    assert receipt_bytes(b"\x10\x04\x09") == 3                  # not a real-time request: printed bytes


def test_the_action_runs_at_the_exact_byte_and_that_client_counts_no_more():
    core, till, fired = PrinterCore(), Client(), []
    core.crash_after(5, lambda: fired.append(len(core.stream)))
    core.receive(STATUS + b"AB", till)
    assert not fired and till.got == b"\x12"                    # status answered, 2 receipt bytes so far
    core.receive(b"CDEFGH\n\x1dV\x00", till)
    assert fired == [len(STATUS) + 5] and bytes(core.stream).endswith(b"ABCDE")
    core.receive(b"rest\n\x1dV\x00" + STATUS, till)             # sent before it died: never arrives
    assert core.receipts == [] and till.got == b"\x12"
    rebooted = Client()
    core.receive(b"*** COPY ***\nTOTAL 4.88\n\x1dV\x00", rebooted)
    [slip] = core.receipts                                     # the torn start and the copy on one slip
    assert slip.lines == ["ABCDE*** COPY ***", "TOTAL 4.88"] and core.crashes[0]["at"] == "bytes"


def test_the_action_at_the_cut_runs_after_the_receipt_once():
    core, till, fired = PrinterCore(), Client(), []
    core.crash_at_cut(lambda: fired.append(len(core.receipts)))
    core.receive(b"Sale\nTOTAL 4.88\n", till)
    assert not fired
    core.receive(b"\x1dV\x00" + STATUS, till)
    assert fired == [1] and till.got == b"\x12"                 # the status asked with the cut is answered
    core.receive(b"\x10\x04\x04", till)                         # ... but nothing after the power cut
    assert till.got == b"\x12" and [r.lines for r in core.receipts] == [["Sale", "TOTAL 4.88"]]
    core.cancel_crash()


def test_a_power_cycle_loses_the_buffer_resets_clients_and_comes_back():
    core, till = PrinterCore(), Client()
    core.crash_after(12, lambda: core.power_off(None))
    with pytest.raises(PowerOff):
        core.receive(b"\x1b\x21\x08Sale 1\nmore", till)           # the power goes 2 bytes into the second line
    with pytest.raises(PowerOff):                               # off: a new client is reset, nothing answered
        core.receive(STATUS, Client())
    assert core.lost_bytes == len(STATUS)
    core.power_on()
    back = Client()
    core.receive(STATUS + b"COPY\nTOTAL 4.88\n\x1dV\x00", back)
    assert back.got == b"\x12"
    [slip] = core.receipts
    # the printed line stays on the paper; the half line in the printer's buffer went with the power
    assert slip.lines == ["Sale 1", "COPY", "TOTAL 4.88"]
