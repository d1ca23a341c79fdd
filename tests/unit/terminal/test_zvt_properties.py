"""Round trips of the shared ZVT codec with generated values (hypothesis): every command it encodes, BMP sections
of every kind (fixed, LLVAR, LLLVAR, the TLV container), APDU framing with short and extended lengths cut into
arbitrary pieces, and RS-232 frames (DLE stuffing, CRC)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.protocols import zvt
from harness.protocols.zvt.bmp import FIXED, LL, LLL, TLV

settings.register_profile("zvt", deadline=None, max_examples=60)
PROFILE = settings.get_profile("zvt")

MAX_LENGTH = {LL: 99, LLL: 999}
PRINTABLE = string.ascii_letters + string.digits + " .,:;-/*#"


# -- value strategies, by encoding -----------------------------------------------------------------------------
def digits(max_len: int) -> st.SearchStrategy[str]:
    """BCD digit strings; '*' is a masked digit (E nibble on the wire)."""
    return st.text(alphabet="0123456789*", max_size=max_len)


def ascii_text(max_len: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=PRINTABLE, max_size=max_len).map(lambda t: t.rstrip(" "))


def tlv_name_values(depth: int = 2) -> st.SearchStrategy[dict]:
    """A TLV container as the codec decodes it: named tags, unknown primitive and constructed tags."""
    known = st.one_of(
        *[
            st.tuples(st.just(t.name), {"int": st.integers(0, 2**32), "text": ascii_text(40),
                                        "raw": st.binary(max_size=40)}[t.encoding])
            for t in zvt.TLV_TABLE
        ]
    )
    primitive_tags = st.one_of(
        st.integers(0x01, 0xFE).filter(lambda t: t & 0x1F != 0x1F and not t & 0x20),
        st.integers(0x00, 0x7F).map(lambda b: 0x1F00 | b),
    ).filter(lambda t: t not in zvt.TLV_TAGS)
    # long values at the top level bring in the 81 LL and 82 HH LL length forms
    values = st.binary(max_size=40) | st.binary(min_size=120, max_size=300) if depth == 2 else st.binary(max_size=40)
    unknown = st.tuples(primitive_tags.map(lambda t: f"tag_{t:x}"), values)
    choices = [known, unknown]
    if depth:
        constructed_tags = st.integers(0x20, 0xFE).filter(lambda t: t & 0x20 and t & 0x1F != 0x1F)
        choices.append(st.tuples(constructed_tags.map(lambda t: f"tag_{t:x}"), tlv_name_values(depth - 1)))
    return st.lists(st.one_of(*choices), max_size=5, unique_by=lambda kv: kv[0]).map(dict)


def bmp_value(bmp: zvt.Bmp) -> st.SearchStrategy:
    if bmp.kind == TLV:
        return tlv_name_values()
    limit = MAX_LENGTH.get(bmp.kind, bmp.size)
    if bmp.encoding == "int":
        return st.integers(0, 256**bmp.size - 1)
    if bmp.encoding == "bcd":
        return st.integers(0, 10 ** (2 * bmp.size) - 1)
    if bmp.encoding == "digits":
        return digits(2 * bmp.size if bmp.kind == FIXED else min(2 * limit, 60))
    if bmp.encoding == "ascii":
        return ascii_text(min(limit, 80))
    return st.binary(min_size=bmp.size, max_size=bmp.size) if bmp.kind == FIXED else st.binary(max_size=80)


def bmp_items(bmps: list[zvt.Bmp] | tuple[zvt.Bmp, ...] = zvt.BMP_TABLE, max_size: int = 6) -> st.SearchStrategy:
    """[(name, value), ...] of distinct BMPs, in any order."""
    return st.lists(st.sampled_from(list(bmps)), max_size=max_size, unique_by=lambda b: b.number).flatmap(
        lambda chosen: st.tuples(*[st.tuples(st.just(b.name), bmp_value(b)) for b in chosen])
    ).map(list)


def prefix_value(f: zvt.Field) -> st.SearchStrategy:
    if f.encoding == "bcd":
        if f.name == "currency":
            # a currency 03xx / 06xx cannot be told from a following BMP 03 / 06 in a registration
            return st.integers(0, 9999).filter(lambda v: v // 100 not in (0x03, 0x06))
        return st.integers(0, 10 ** (2 * f.size) - 1)
    if f.encoding == "int":
        return st.integers(0, 256**f.size - 1)
    return st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=60)


@st.composite
def command_fields(draw, command: zvt.Command) -> dict:
    """Fields for `command`: its prefix (an optional field left out ends the data) and, if it carries them, BMPs."""
    fields: dict = {}
    complete = True
    for f in command.prefix:
        if f.optional and not draw(st.booleans()):
            complete = False
            break
        fields[f.name] = draw(prefix_value(f))
    if command.name == "completion" and draw(st.booleans()):
        fields["sw_version"] = draw(ascii_text(30))
        fields["terminal_status"] = draw(st.integers(0, 255))
    if command.bmps and complete:
        allowed = zvt.BMP_TABLE
        if command.name == "registration":
            allowed = tuple(b for b in zvt.BMP_TABLE if b.name in ("service_byte", "tlv"))
        for name, value in draw(bmp_items(allowed)):
            fields[name] = value
    return fields


@st.composite
def any_command(draw) -> tuple[str, dict]:
    command = draw(st.sampled_from(zvt.COMMAND_TABLE))
    return command.name, draw(command_fields(command))


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """`data` in pieces of the given sizes (cycled), the last piece whatever is left."""
    pieces, i, k = [], 0, 0
    while i < len(data):
        n = sizes[k % len(sizes)] if sizes else len(data)
        pieces.append(data[i : i + n])
        i += n
        k += 1
    return pieces


# -- commands --------------------------------------------------------------------------------------------------
@settings(PROFILE)
@given(any_command())
def test_every_command_survives_encode_and_decode(command):
    name, fields = command
    raw = zvt.encode(name, **fields)
    [apdu] = zvt.ApduReader().feed(raw)
    msg = zvt.decode_apdu(apdu)
    assert msg.name == name
    assert msg.fields == fields


@pytest.mark.parametrize("command", zvt.COMMAND_TABLE, ids=lambda c: c.name)
def test_each_command_is_generated(command):
    """Every command in the table gets its own run (not only those the sampler happens to pick)."""

    @settings(PROFILE, max_examples=25)
    @given(command_fields(command))
    def round_trip(fields):
        msg = zvt.decode_apdu(zvt.ApduReader().feed(zvt.encode(command.name, **fields))[0])
        assert (msg.name, msg.fields) == (command.name, fields)

    round_trip()


@settings(PROFILE)
@given(st.integers(0x01, 0xFF))
def test_nack_carries_its_result_code(code):
    msg = zvt.decode_apdu(zvt.ApduReader().feed(zvt.encode("nack", result_code=code))[0])
    assert (msg.name, msg.fields) == ("nack", {"result_code": code})


# -- BMP sections ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [FIXED, LL, LLL, TLV])
def test_bmp_sections_of_every_kind_build_and_parse(kind):
    of_kind = [b for b in zvt.BMP_TABLE if b.kind == kind]

    @settings(PROFILE)
    @given(bmp_items(of_kind, max_size=4), bmp_items(max_size=3))
    def round_trip(items, others):
        names = {n for n, _ in items}
        section = items + [(n, v) for n, v in others if n not in names]
        raw = zvt.build_bmps(section)
        assert zvt.parse_bmps(raw) == dict(section)
        assert zvt.parse_bmps(raw, lenient=True) == dict(section)

    round_trip()


@settings(PROFILE)
@given(tlv_name_values())
def test_tlv_containers_build_and_parse(container):
    assert zvt.parse_tlv(zvt.build_tlv(container)) == container


@settings(PROFILE)
@given(bmp_items(max_size=4), st.binary(min_size=1, max_size=20))
def test_lenient_parsing_keeps_what_follows_an_unknown_bmp(items, tail):
    unknown = next(n for n in range(256) if n not in zvt.BMPS)
    raw = zvt.build_bmps(items) + bytes([unknown]) + tail
    with pytest.raises(zvt.ZvtError, match=f"unknown BMP {unknown:02X}"):
        zvt.parse_bmps(raw)
    assert zvt.parse_bmps(raw, lenient=True) == {**dict(items), "unparsed": (bytes([unknown]) + tail).hex()}


# -- APDU framing ----------------------------------------------------------------------------------------------
apdus = st.tuples(
    st.sampled_from(sorted(zvt.KNOWN_CLASSES)), st.integers(0, 255), st.binary(max_size=700)
).map(lambda a: zvt.Apdu(*a))


@settings(PROFILE)
@given(st.lists(apdus, min_size=1, max_size=5), st.lists(st.integers(1, 64), max_size=8))
def test_apdus_survive_any_chunking(sent, sizes):
    stream = b"".join(a.to_bytes() for a in sent)
    reader = zvt.ApduReader()
    got = [apdu for piece in cut(stream, sizes) for apdu in reader.feed(piece)]
    assert got == sent and reader.pending == b""


@settings(PROFILE)
@given(apdus)
def test_short_and_extended_lengths(apdu):
    raw = apdu.to_bytes()
    extended = len(apdu.data) >= 0xFF
    assert raw[2] == (0xFF if extended else len(apdu.data))
    assert len(raw) == len(apdu.data) + (5 if extended else 3)
    assert zvt.apdu_length(raw[: 5 if extended else 3]) == len(raw)
    assert zvt.apdu_length(raw[:2]) is None and (not extended or zvt.apdu_length(raw[:4]) is None)
    assert zvt.Apdu.from_bytes(raw) == apdu


# -- RS-232 ----------------------------------------------------------------------------------------------------
def crc_bitwise(data: bytes) -> int:
    """CRC-CCITT, reflected 0x8408, start 0: the specification's bit-by-bit definition."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


dle_heavy = st.binary(max_size=300) | st.lists(st.sampled_from([0x10, 0x02, 0x03, 0x06, 0x15, 0x00]),
                                               max_size=60).map(bytes)


@settings(PROFILE)
@given(st.lists(dle_heavy, min_size=1, max_size=4), st.lists(st.integers(1, 16), max_size=6), st.data())
def test_serial_frames_survive_stuffing_and_chunking(payloads, sizes, data):
    stream = b""
    expected = []
    for apdu in payloads:
        answer = data.draw(st.sampled_from([b"", bytes([zvt.LINK_ACK]), bytes([zvt.LINK_NAK])]))
        stream += answer + zvt.serial_frame(apdu)
        expected += [("ack",) if answer == bytes([zvt.LINK_ACK]) else ("nak",)] if answer else []
        expected.append(("frame", apdu, True))
    decoder = zvt.SerialDecoder()
    events = [e for piece in cut(stream, sizes) for e in decoder.feed(piece)]
    assert [(e.kind,) if e.kind in ("ack", "nak") else (e.kind, e.apdu, e.crc_ok) for e in events] == expected


@settings(PROFILE)
@given(dle_heavy, st.integers(1, 0xFFFF))
def test_serial_crc_matches_the_definition_and_catches_corruption(apdu, flip):
    frame = bytearray(zvt.serial_frame(apdu))
    assert zvt.crc16(apdu + bytes([zvt.ETX])) == crc_bitwise(apdu + bytes([zvt.ETX]))
    frame[-2] ^= flip & 0xFF
    frame[-1] ^= flip >> 8
    [event] = zvt.SerialDecoder().feed(bytes(frame))
    assert event.kind == "frame" and event.apdu == apdu and not event.crc_ok
