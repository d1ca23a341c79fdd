"""The printer state machine and core: real-time status, held bytes while not ready, faults, ASB, GS r/I."""

from __future__ import annotations

import threading
import time

import pytest

from harness.printer.core import PrinterCore
from harness.printer.status import FaultError, PrinterStatus
from harness.protocols.escpos import commands as C


class Wire:
    """Collects what the printer sends back."""

    def __init__(self):
        self.data = bytearray()
        self.got = threading.Event()

    def __call__(self, data: bytes) -> None:
        self.data += data
        self.got.set()


@pytest.mark.parametrize(("fault", "expected"), [
    (None, {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x12}),
    ("paper_out", {1: 0x1A, 2: 0x32, 3: 0x12, 4: 0x7E}),
    ("paper_near_end", {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x1E}),
    ("cover_open", {1: 0x1A, 2: 0x16, 3: 0x12, 4: 0x12}),
    ("offline", {1: 0x1A, 2: 0x12, 3: 0x12, 4: 0x12}),
    ("drawer_open", {1: 0x16, 2: 0x12, 3: 0x12, 4: 0x12}),
    ("cutter_error", {1: 0x1A, 2: 0x52, 3: 0x1A, 4: 0x12}),
])
def test_dle_eot_bytes(fault, expected):
    core = PrinterCore()
    core.set_fault(fault)
    for n, byte in expected.items():
        wire = Wire()
        core.receive(C.DLE_EOT + bytes([n]), wire)
        assert bytes(wire.data) == bytes([byte]), f"DLE EOT {n} under {fault}"
        assert byte & 0x93 == 0x12                      # the 0xx1xx10 shape


def test_unknown_fault_names_the_known_ones():
    with pytest.raises(FaultError, match="paper_out"):
        PrinterCore().set_fault("jammed")


def test_dle_eot_inside_image_data_is_answered_at_once():
    core = PrinterCore()
    wire = Wire()
    header = C.GS + b"v0\x00" + (4).to_bytes(2, "little") + (4).to_bytes(2, "little")
    core.receive(header + b"\x00\x10\x04", wire)
    assert wire.data == b""
    core.receive(b"\x01\x00", wire)                     # the DLE EOT 1 straddles two writes
    assert bytes(wire.data) == b"\x12"
    core.receive(b"\x00" * 11 + b"\n" + C.CUT_FULL, wire)
    receipt = core.wait_for_receipt(1)
    assert receipt.images[0].bits[1:4] == b"\x10\x04\x01"   # still image data, printed as such
    assert bytes(wire.data) == b"\x12"                   # answered once


def test_not_ready_printer_holds_bytes_and_prints_them_on_recovery():
    core = PrinterCore()
    wire = Wire()
    core.set_fault("paper_out")
    core.receive(b"SALE 9.99\n" + C.CUT_FULL + C.DLE_EOT_PAPER, wire)
    assert bytes(wire.data) == b"\x7e"                  # real-time status still answered
    assert core.receipts == [] and len(core.held) > 0
    with pytest.raises(TimeoutError, match="held unprinted while paper_out"):
        core.wait_for_receipt(0.05)
    core.set_fault(None)
    assert core.wait_for_receipt(1).lines == ["SALE 9.99"]
    assert not core.held


def test_discard_held_models_power_cycle():
    core = PrinterCore()
    core.set_fault("cover_open")
    core.receive(b"LOST\n" + C.CUT_FULL)
    assert core.discard_held() > 0
    core.set_fault(None)
    assert core.receipts == []


def test_bytes_beyond_the_receive_buffer_are_lost_and_counted():
    core = PrinterCore()
    core.set_fault("offline")
    size = core.profile.receive_buffer
    core.receive(b"x" * (size + 100))
    assert len(core.held) == size and core.lost_bytes == 100


def test_silent_never_answers_and_slow_answers_late():
    core = PrinterCore(slow_delay=0.2)
    wire = Wire()
    core.set_fault("silent")
    core.receive(C.DLE_EOT_PRINTER, wire)
    assert not wire.got.wait(0.3)
    core.set_fault("slow")
    core.receive(C.DLE_EOT_PRINTER, wire)
    assert wire.data == b""                              # not at once
    assert wire.got.wait(5) and bytes(wire.data) == b"\x12"
    core.close()


def test_gs_r_gs_i_and_esc_v():
    core = PrinterCore("gb18030-clone")
    wire = Wire()
    core.set_fault("paper_near_end")
    core.receive(C.GS_R + b"\x01" + C.GS_I + b"\x01" + C.GS_I + b"\x43" + C.GS_I + b"\x45", wire)
    assert bytes(wire.data) == b"\x03" + b"\x20" + b"_POS-80C\x00" + b"_CHINA GB18030\x00"


def test_gs_i_identity_of_the_tm_t88():
    core = PrinterCore("tm-t88")
    wire = Wire()
    core.receive(C.GS_I + b"\x42" + C.GS_I + b"\x02", wire)
    assert bytes(wire.data) == b"_EPSON\x00" + b"\x02"


def test_asb_sent_when_enabled_and_on_every_change_only():
    core = PrinterCore()
    wire = Wire()
    core.receive(b"hello", wire)
    core.set_fault("cover_open")
    assert wire.data == b""                              # nothing unasked before GS a
    core.set_fault(None)
    core.receive(C.GS_A + b"\x0f", wire)
    assert bytes(wire.data) == bytes([0x10, 0, 0, 0])
    core.set_fault("paper_out")
    assert bytes(wire.data[4:]) == bytes([0x18, 0, 0x0F, 0])
    core.set_fault("paper_out")                          # no change, nothing sent
    assert len(wire.data) == 8


def test_usb_port_status_follows_the_same_state():
    s = PrinterStatus()
    assert s.usb_port_status() == 0x18
    s.apply_fault("paper_out")
    assert s.usb_port_status() == 0x28
    s.apply_fault("cover_open")
    assert s.usb_port_status() == 0x00


def test_wait_for_receipt_names_what_arrived_instead():
    core = PrinterCore()
    core.receive(b"half a receipt\n")
    with pytest.raises(TimeoutError, match="half a receipt"):
        core.wait_for_receipt(0.05)


def test_usb_class_requests(serve):
    s = serve("usb")
    p = s.client()
    device_id = p.device.ctrl_transfer(0xA1, 0, 0, 0, 256).tobytes()
    assert int.from_bytes(device_id[:2], "big") == len(device_id)
    assert b"MFG:EPSON;" in device_id and b"CMD:ESC/POS;" in device_id
    assert p.device.ctrl_transfer(0xA1, 1, 0, 0, 1)[0] == 0x18
    s.core.set_fault("paper_out")
    assert p.device.ctrl_transfer(0xA1, 1, 0, 0, 1)[0] == 0x28


@pytest.mark.parametrize("transport", ["tcp", "serial", "usb"])
def test_silent_printer_gives_client_no_status(serve, transport):
    s = serve(transport)
    p = s.client()
    s.core.set_fault("silent")
    if transport == "tcp":
        p.device.settimeout(0.3)
        with pytest.raises(TimeoutError):
            p.is_online()
    elif transport == "serial":
        assert p.is_online() is False                   # pyserial read times out empty: 3.1 says offline
    else:
        import usb.core

        p.device.default_timeout = 300                  # ms, as the TCP case's 0.3 s (pyusb's default is 1 s)
        with pytest.raises(usb.core.USBTimeoutError):
            p.is_online()


def test_fault_after_fails_at_the_exact_byte_in_the_middle_of_a_receipt():
    core = PrinterCore()
    wire = Wire()
    core.fault_after(5, "paper_out")
    core.receive(b"SALE 9.99\n" + C.CUT_FULL + C.DLE_EOT_PAPER, wire)    # one chunk: split inside it
    assert core.status.faults and "paper_out" in core.status.faults
    assert bytes(core.held).startswith(b"9.99")            # "SALE " went to paper, the rest is held
    assert bytes(wire.data) == b"\x7e"                     # asked after the paper ran out: paper end
    core.set_fault(None)
    assert core.wait_for_receipt(1).lines == ["SALE 9.99"]


def test_clearing_faults_also_clears_a_fault_still_waiting_for_its_byte():
    """A paper-out armed for the middle of a receipt that never came (the sale was declined) must not hit the
    next customer's receipt once the faults are cleared."""
    core = PrinterCore()
    core.fault_after(5, "paper_out")
    core.set_fault(None)
    core.receive(b"NEXT CUSTOMER 6.69\n" + C.CUT_FULL)
    assert not core.status.faults
    assert core.wait_for_receipt(1).lines == ["NEXT CUSTOMER 6.69"]


def test_every_drawer_pulse_is_recorded_with_its_time_inside_a_receipt_or_outside_any():
    core = PrinterCore()
    before = time.time()
    core.receive(b"TOTAL 4.88\n\x1bp\x00\x19\xfa" + C.GS + b"V\x00")          # ESC p with the receipt
    core.receive(b"\x1bp\x01\x19\xfa")                                          # on its own: no receipt
    core.receive(b"\x10\x14\x01\x00\x05")                                       # DLE DC4 1 (real time)
    inside, alone, dc4 = core.drawer_events
    assert (inside.receipt, inside.cut, inside.inside_receipt, inside.pin, inside.command) == (0, "full", True, 2,
                                                                                               "ESC p")
    assert (alone.receipt, alone.inside_receipt, alone.pin) == (None, False, 5)
    assert (dc4.command, dc4.on_ms, dc4.receipt) == ("DLE DC4", 500, None)
    assert before <= inside.t <= alone.t <= dc4.t <= time.time()
    assert core.receipts[0].drawer_pulses == [2] and "2 drawer pulse(s) outside any receipt" in core.describe_pending()
    tail = core.flush()                                                         # at close: the uncut receipt
    assert [(d.receipt, d.cut, d.inside_receipt) for d in core.drawer_events[1:]] == [(1, None, False)] * 2
    assert tail.to_dict()["drawer_events"][0]["inside_receipt"] is False
