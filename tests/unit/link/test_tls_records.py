"""TLS record structure without keys: records found however TCP cuts them, and one connection's records into
handshake / request#N / response#N for TLS 1.2 and 1.3 (tickets, resumption, HelloRetryRequest)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP

from harness.link.tracker import Tracker, parse
from harness.protocols.tls import (
    ALERT,
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    RecordError,
    RecordReader,
    TlsSession,
    header,
    parse_server_hello,
    record,
    server_hello,
)

CLIENT_HELLO = record(HANDSHAKE, b"\x01\x00\x00\x28" + bytes(40))
FIN13 = record(APPLICATION_DATA, bytes(53))          # an encrypted TLS 1.3 Finished, SHA-256 suites
FIN13_384 = record(APPLICATION_DATA, bytes(69))
CCS = record(CHANGE_CIPHER_SPEC, b"\x01")


def app(n: int) -> bytes:
    return record(APPLICATION_DATA, bytes(n))


def test_a_record_split_across_segments_is_found_once_its_header_is_complete():
    r = RecordReader()
    data = app(100)
    assert r.feed(data[:3]) == []                    # the header itself is cut
    found = r.feed(data[3:40])
    assert [(x.type, x.start, x.end) for x in found] == [(APPLICATION_DATA, 0, 105)]
    assert r.feed(data[40:]) == []
    assert [(x.start, x.length) for x in r.feed(app(7))] == [(105, 7)]


def test_two_records_in_one_segment_and_a_third_begun():
    r = RecordReader()
    stream = CCS + FIN13 + app(30)
    found = r.feed(stream[:len(CCS) + len(FIN13) + 2])
    assert [(x.type_name, x.start, x.length) for x in found] == [("change_cipher_spec", 0, 1),
                                                                  ("application_data", 6, 53)]
    found = r.feed(stream[len(CCS) + len(FIN13) + 2:])
    assert [(x.start, x.length) for x in found] == [(64, 30)]


def test_one_byte_at_a_time():
    r = RecordReader()
    stream = CLIENT_HELLO + app(10) + app(0) + record(ALERT, b"\x01\x00")
    found = [x for b in stream for x in r.feed(bytes([b]))]
    assert [x.type for x in found] == [HANDSHAKE, APPLICATION_DATA, APPLICATION_DATA, ALERT]
    assert bytes(found[0].head) == CLIENT_HELLO                 # a handshake record's bytes are kept


def test_bytes_that_are_not_tls_stop_the_reader():
    r = RecordReader()
    assert r.feed(b"\x00\x260200") == []
    assert r.broken and "record type" in r.broken
    with pytest.raises(RecordError, match="version"):
        header(b"\x17\x09\x03\x00\x05")
    with pytest.raises(RecordError, match="exceeds"):
        header(b"\x17\x03\x03\xff\xff")


def test_server_hello_version_suite_retry_and_resumption():
    assert parse_server_hello(server_hello(0x1302)).version == "1.3"
    assert parse_server_hello(server_hello(0x1302)).finished_record == 69
    assert parse_server_hello(server_hello(0xC02F, tls13=False)).version == "1.2"
    assert parse_server_hello(server_hello(retry=True)).retry
    assert parse_server_hello(CLIENT_HELLO) is None
    assert parse_server_hello(server_hello()[:20]) is None       # too short to tell yet


class Conn:
    """Feed both directions of one connection in link order; collect the stages named."""

    def __init__(self, tickets=(2, 1)):
        self.s = TlsSession(tickets)
        self.up, self.down = RecordReader(), RecordReader()
        self.stages: list[str] = []

    def c(self, data: bytes) -> None:
        for r in self.up.feed(data):
            self._note(self.s.classify(r, True))

    def srv(self, data: bytes, acked: int | None = None) -> None:
        for r in self.down.feed(data):
            self._note(self.s.classify(r, False, self.up.offset if acked is None else acked))

    def _note(self, stage):
        if stage:
            self.stages.append(stage)


def test_tls12_full_handshake_then_two_exchanges():
    k = Conn()
    k.c(CLIENT_HELLO)
    k.srv(server_hello(0xC02F, tls13=False) + record(HANDSHAKE, bytes(300)) + record(HANDSHAKE, b"\x0e\x00\x00\x00"))
    k.c(record(HANDSHAKE, bytes(37)) + CCS + record(HANDSHAKE, bytes(40)))
    k.srv(record(HANDSHAKE, bytes(186)) + CCS + record(HANDSHAKE, bytes(40)))   # ticket (plain), CCS, Finished
    k.c(app(100))
    k.srv(app(120) + app(20))                                         # a response of two records: one burst
    k.c(app(100))
    k.srv(app(120))
    assert k.stages == ["handshake", "request#1", "response#1", "request#2", "response#2"]


def test_tls12_resumption_abbreviated_handshake():
    k = Conn()
    k.c(CLIENT_HELLO)
    k.srv(server_hello(0xC02F, tls13=False) + CCS + record(HANDSHAKE, bytes(40)))
    k.c(CCS + record(HANDSHAKE, bytes(40)) + app(90))                 # client Finished and request: one segment
    k.srv(app(110))
    assert k.stages == ["handshake", "request#1", "response#1"]


def test_tls13_full_handshake_tickets_after_the_request():
    k = Conn()
    k.c(CLIENT_HELLO)
    k.srv(server_hello(0x1302) + CCS + app(23) + app(320) + app(97) + app(69))   # EE, Cert, CV, Finished
    k.c(CCS + FIN13_384 + app(97))                                    # Finished and the request together
    k.srv(app(250))                                                   # two NewSessionTickets ...
    k.srv(app(250))
    k.srv(app(117))                                                   # ... then the response
    assert k.stages == ["handshake", "request#1", "response#1"]
    assert [why for _, why in k.s.skipped] == ["NewSessionTicket", "NewSessionTicket"]


def test_tls13_resumption_sends_one_ticket():
    k = Conn()
    k.c(CLIENT_HELLO)
    hello = server_hello(0x1301, resumed=True)
    assert parse_server_hello(hello).resumed
    k.srv(hello + CCS + app(23) + app(53))
    k.c(CCS + FIN13)
    k.srv(app(250))                                                   # its one ticket
    k.c(app(90))
    k.srv(app(117))
    assert k.stages == ["handshake", "request#1", "response#1"]


def test_tls13_server_burst_before_any_request_is_no_response_even_with_tickets_unknown():
    k = Conn(tickets=(0, 0))
    k.c(CLIENT_HELLO)
    k.srv(server_hello() + app(23) + app(53))
    k.c(FIN13)
    k.srv(app(250) + app(250))                                        # tickets nobody told the link about
    k.c(app(90))
    k.srv(app(117))
    assert k.stages == ["handshake", "request#1", "response#1"]


def test_server_records_sent_before_the_request_arrived_answer_nothing():
    """Tickets the link was not told about, crossing the request: the server's ACK shows it had not received
    the request when it sent them (the causal rule)."""
    k = Conn(tickets=(0, 0))
    k.c(CLIENT_HELLO)
    k.srv(server_hello() + app(23) + app(53))
    k.c(FIN13)
    before = k.up.offset
    k.c(app(90))
    k.srv(app(250), acked=before)                                      # sent before the request reached it
    k.srv(app(117))
    assert k.stages == ["handshake", "request#1", "response#1"]


def test_hello_retry_request_then_the_real_server_hello():
    k = Conn()
    k.c(CLIENT_HELLO)
    k.srv(server_hello(retry=True))
    k.c(CCS + CLIENT_HELLO)
    k.srv(server_hello(0x1303) + CCS + app(23) + app(53))
    k.c(FIN13 + app(60))
    k.srv(app(250) + app(250) + app(80))
    assert k.stages == ["handshake", "request#1", "response#1"]


def test_alerts_and_a_lone_client_burst_of_several_records():
    k = Conn(tickets=(0, 0))
    k.c(CLIENT_HELLO)
    k.srv(server_hello() + app(23) + app(53))
    k.c(FIN13 + app(60) + app(60))                                    # one request in two records
    k.srv(app(80))
    k.c(record(ALERT, b"\x01\x00"))
    assert k.stages == ["handshake", "request#1", "response#1"]


def seg(src, sport, dst, dport, seq, payload=b"", flags="PA", ack=1):
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags) / payload)


def test_tracker_names_tls_stages_on_a_tls_port_from_split_segments():
    t = Tracker(("terminal", "host"), {}, {"10.0.0.1": "terminal", "10.0.0.2": "host"}, tls_ports={5000},
                tickets=(0, 0))
    up, down = ("10.0.0.1", 40000, "10.0.0.2", 5000), ("10.0.0.2", 5000, "10.0.0.1", 40000)
    n = iter(range(1, 100))

    def obs(raw):
        return [(m.stage, m.direction, m.start, m.end) for m in t.observe(parse(raw), raw, next(n))[1]]

    assert obs(seg(*up, 1000, flags="S")) == [("connect", "terminal->host", 0, 1)]
    assert obs(seg(*down, 5000, flags="SA", ack=1001)) == []
    assert obs(seg(*up, 1001, CLIENT_HELLO, ack=5001)) == []
    sh = server_hello() + app(23) + app(53)
    assert obs(seg(*down, 5001, sh[:7], ack=1001 + len(CLIENT_HELLO))) == []     # ServerHello cut in two
    assert obs(seg(*down, 5008, sh[7:], ack=1001 + len(CLIENT_HELLO))) == []
    c = 1001 + len(CLIENT_HELLO)
    req = FIN13 + app(90)
    assert obs(seg(*up, c, req[:len(FIN13) + 2], ack=5001 + len(sh))) == [("handshake", "terminal->host",
                                                                          len(CLIENT_HELLO), len(CLIENT_HELLO) + 58)]
    assert obs(seg(*up, c + len(FIN13) + 2, req[len(FIN13) + 2:], ack=5001 + len(sh))) == [
        ("request#1", "terminal->host", len(CLIENT_HELLO) + 58, len(CLIENT_HELLO) + 58 + 95)]
    assert obs(seg(*down, 5001 + len(sh), app(80), ack=c + len(req))) == [
        ("response#1", "host->terminal", len(sh), len(sh) + 85)]
    assert t.stages_seen == {"terminal->host": {"connect": 1, "handshake": 1, "request#1": 1},
                             "host->terminal": {"response#1": 1}}


def test_tls13_early_data_before_the_server_hello_starts_no_stage():
    k = Conn(tickets=(0, 0))
    k.c(CLIENT_HELLO + app(40))                                        # 0-RTT early data
    k.srv(server_hello() + app(23) + app(53))
    k.c(FIN13 + app(60))
    k.srv(app(80))
    assert k.stages == ["handshake", "request#1", "response#1"]


def test_a_link_joining_mid_connection_takes_application_data_at_face_value():
    k = Conn()
    k.c(app(60))
    k.srv(app(80))
    assert k.stages == ["request#1", "response#1"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA]),
                          st.integers(0, 300)), min_size=1, max_size=12),
       st.lists(st.integers(1, 400), min_size=1, max_size=30))
def test_records_are_found_whatever_the_cuts(records, cuts):
    stream = b"".join(record(t, bytes(n)) for t, n in records)
    r, found, at = RecordReader(), [], 0
    for cut in cuts + [len(stream)]:
        found += r.feed(stream[at:at + cut])
        at += cut
        if at >= len(stream):
            break
    found += r.feed(stream[at:])
    assert [(x.type, x.length) for x in found] == records
    assert all(a.end == b.start for a, b in zip(found, found[1:], strict=False))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.binary(max_size=600))
def test_garbage_never_breaks_a_session(up, down):
    k = Conn()
    k.c(up)
    k.srv(down)
    assert all(s == "handshake" or s.startswith(("request#", "response#")) for s in k.stages)
