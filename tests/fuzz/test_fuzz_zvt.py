"""Fuzz: the ZVT terminal's ECR side. APDU framing and decoding refuse bad bytes only with ZvtError, the ECR
session dispatches anything in process, and over a real socket the terminal answers a valid command after
garbage."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from harness.protocols import zvt
from tests.fuzz.budget import fuzz
from tests.fuzz.targets import ZvtTarget, zvt_samples
from tests.support.ecr_client import Ecr

SAMPLES = zvt_samples()
controls = st.sampled_from(sorted({s[:2] for s in SAMPLES} | {b"\x08\x01", b"\x84\x9a", b"\x06\x99"}))
datas = st.one_of(st.binary(max_size=80), st.sampled_from([s[3:] for s in SAMPLES]),
                  st.tuples(st.sampled_from([s[3:] for s in SAMPLES]), st.integers(0, 80), st.binary(max_size=6))
                  .map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:]))
apdus = st.tuples(controls, datas).map(lambda t: zvt.frame(t[0][0], t[0][1], t[1]))
streams = st.one_of(st.binary(max_size=200), st.lists(apdus, max_size=4).map(b"".join),
                    st.tuples(st.lists(apdus, max_size=4).map(b"".join), st.integers(0, 300), st.binary(max_size=4))
                    .map(lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:]))


@fuzz(300)
@given(streams, st.lists(st.integers(1, 40), max_size=6))
def test_apdu_reader_and_decoder_refuse_only_with_zvt_error(stream, sizes):
    reader = zvt.ApduReader()
    at = 0
    for size in itertools.chain(sizes, [len(stream)]):
        chunk, at = stream[at:at + size], at + size
        try:
            found = reader.feed(chunk)
        except zvt.ZvtError:
            continue
        for apdu in found:
            try:
                msg = zvt.decode_apdu(apdu)
            except zvt.ZvtError:
                continue
            zvt.describe(msg)
            zvt.decode_apdu(apdu, lenient=True)


@fuzz(150)
@given(st.lists(streams, min_size=1, max_size=4))
def test_ecr_session_dispatches_any_stream_in_process(tmp_path_factory, frames):
    """Framing, decoding, dispatch, the transcript's description and every answer sent: nothing escapes."""
    target = ZvtTarget(tmp_path_factory.mktemp("zvt"))
    try:
        for frame in frames:
            target.feed(frame)
    finally:
        target.close()


@fuzz(25)
@given(streams)
def test_terminal_answers_a_registration_after_garbage_on_a_socket(terminal, stream):
    """Garbage on one ECR connection, then a registration on another: the terminal answers it (80 00, then
    the completion; or 84 xx while a command from the garbage still runs) instead of going deaf."""
    with Ecr(terminal.ecr_address, timeout=5) as bad:
        bad.send(stream)
    with Ecr(terminal.ecr_address, timeout=5) as till:
        till.send(Ecr.registration())
        first = till.receive()
        assert first.control[0] in (0x80, 0x84), first
        if first.control == (0x80, 0x00):
            while True:
                msg = till.receive()
                till.ack()
                if msg.control in ((0x06, 0x0F), (0x06, 0x1E)):
                    break


def test_unasked_acknowledgements_do_not_pile_up(tmp_path):
    """Found by bench_fuzz (RSS +12 MiB over 1,000,000 frames): every 80 00 / 84 xx the ECR sent while no
    command waited was queued for ever. Only the newest few are kept."""
    from harness.terminal.ecr import MAX_UNREAD_REPLIES

    target = ZvtTarget(tmp_path)
    try:
        for i in range(5000):
            target.feed(zvt.encode("ack") if i % 2 else zvt.encode("nack", result_code=0x9C))
        assert target.session.replies.qsize() == MAX_UNREAD_REPLIES
        assert target.session.replies.get_nowait().name in ("ack", "nack")
    finally:
        target.close()
