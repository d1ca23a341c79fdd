"""Bad input: truncated, oversized, garbage and undecodable frames are booked; the host keeps serving."""

from __future__ import annotations

import struct
import threading

import pytest

from tests.support.iso_client import Client, sale


def _served(srv, stan: int) -> None:
    assert srv.client().exchange(sale(stan))["39"] == "00"


def test_garbage_closes_only_that_connection(srv):
    other = srv.client()
    bad = srv.client(framing="none")
    bad.sock.sendall(b"\xff\xfeGARBAGE" * 50)
    assert bad.closed_by_peer()
    assert other.exchange(sale(1))["39"] == "00"
    assert any(m["delivery"] == "error" for m in srv.ledger.messages(direction="rx"))


def test_oversized_length_prefix_is_refused(srv):
    c = srv.client(framing="none")
    c.sock.sendall(struct.pack(">H", 60000) + b"0200")
    assert c.closed_by_peer()
    _served(srv, 1)
    assert "length prefix 60000" in srv.ledger.messages(direction="rx")[0]["note"]


def test_truncated_frame_then_disconnect_is_logged(srv):
    c = srv.client(framing="none")
    c.sock.sendall(struct.pack(">H", 100) + b"0200\x70")  # promises 100 bytes, sends 5, leaves
    c.close()
    _served(srv, 1)
    notes = [m["note"] for m in srv.ledger.messages(direction="rx") if m["delivery"] == "error"]
    for _ in range(50):
        if notes:
            break
        threading.Event().wait(0.02)
        notes = [m["note"] for m in srv.ledger.messages(direction="rx") if m["delivery"] == "error"]
    assert notes and "middle of a message" in notes[0]


def test_truncated_length_prefix_alone(srv):
    c = srv.client(framing="none")
    c.sock.sendall(b"\x00")
    c.close()
    _served(srv, 1)


def test_bad_bitmap_gets_format_error_and_connection_stays(srv):
    c = srv.client()
    c.send_raw(b"0200" + b"ZZZZZZZZZZZZZZZZ" + b"000000")
    answer = c.recv()
    assert (answer["t"], answer["39"]) == ("0210", "30")
    assert c.exchange(sale(1))["39"] == "00"


def test_fields_shorter_than_the_bitmap_promises(srv):
    c = srv.client()
    c.send_raw(b"0200" + b"7000000000000000" + b"1641111111")  # PAN length 16, only 8 digits follow
    assert c.recv()["39"] == "30"
    assert c.exchange(sale(2))["39"] == "00"
    assert "4111111111111111" not in srv.ledger_path.read_bytes().decode("latin-1")


def test_response_sent_by_a_terminal_is_ignored(srv):
    c = srv.client()
    c.send({"t": "0210", "11": "000001", "39": "00"})
    assert c.recv(timeout=0.2) is None
    assert c.exchange(sale(1))["39"] == "00"


def test_valid_frame_before_garbage_in_one_segment_is_not_lost(srv):
    import iso8583
    from iso8583.specs import default_ascii

    raw, _ = iso8583.encode(sale(1), default_ascii)
    c = srv.client()
    c.sock.sendall(struct.pack(">H", len(raw)) + bytes(raw) + b"\xff\xff junk")
    assert c.recv()["39"] == "00"
    assert c.closed_by_peer()
    assert srv.ledger.payment(stan="000001").state == "approved"


@pytest.mark.parametrize("framing", ["4ascii", "none"])
def test_other_framings(make_host, framing):
    srv = make_host(framing=framing)
    c = srv.client()
    assert c.exchange(sale(1))["39"] == "00"
    assert c.exchange({"t": "0800", "11": "000002", "70": "301"})["t"] == "0810"


def test_binary_bitmap_spec(make_host):
    srv = make_host(spec="binary")
    c = srv.client()
    answer = c.exchange(sale(1, amount=951))
    assert answer["39"] == "51"
    assert (
        c.exchange(
            {
                "t": "0400",
                "11": "000002",
                "41": "TERM0001",
                "4": "000000000951",
                "90": "0200000001".ljust(42, "0"),
            }
        )["39"]
        == "00"
    )


def test_many_connections_with_garbage_in_between(srv):
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            c = Client(srv.address)
            for i in range(5):
                assert c.exchange(sale(n * 100 + i, terminal=f"TERM{n:04d}"))["39"] == "00"
            c.close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for _ in range(5):
        bad = srv.client(framing="none")
        bad.sock.sendall(b"\x00\x00")
    for t in threads:
        t.join(20)
    assert not errors
    assert srv.ledger.totals()["approved"]["count"] == 40
