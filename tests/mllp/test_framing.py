"""MLLP framing: chunking, resync over junk, the size limit."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpul.errors import FrameTooLarge
from simpul.mllp.framing import END_BLOCK, START_BLOCK, FrameDecoder, frame

# Payloads hold any byte but 0x0B, plus lone 0x1C not followed by CR (data, by design).
payloads = st.lists(
    st.one_of(st.binary(min_size=0, max_size=40).map(lambda b: bytes(x for x in b if x not in (0x0B, 0x1C))),
              st.just(b"\x1cX"), st.just(b"OBX|\x1c")),
    max_size=4,
).map(b"".join).filter(lambda p: END_BLOCK not in p)
# Between frames: anything but 0x0B (which would start a frame).
junk = st.binary(max_size=12).map(lambda b: bytes(x for x in b if x != 0x0B))


def _chunk(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(stream)]:
        out.append(stream[prev:p])
        prev = p
    return out


def _decode(chunks: list[bytes], decoder: FrameDecoder) -> list[bytes]:
    got: list[bytes] = []
    for chunk in chunks:
        got.extend(decoder.feed(chunk))
    return got


@settings(max_examples=300, deadline=None)
@given(st.lists(payloads, max_size=6), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_yields_the_same_payloads(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(m) for m in messages)
    decoder = FrameDecoder()
    assert _decode(_chunk(stream, cuts), decoder) == messages
    assert decoder.junk_bytes == 0
    assert not decoder.partial


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(junk, payloads), max_size=6), junk, st.lists(st.integers(0, 10_000), max_size=12))
def test_junk_between_frames_is_skipped_and_counted(pairs, trailing: bytes, cuts: list[int]) -> None:
    stream = b"".join(j + frame(m) for j, m in pairs) + trailing
    decoder = FrameDecoder()
    assert _decode(_chunk(stream, cuts), decoder) == [m for _, m in pairs]
    assert decoder.junk_bytes == sum(len(j) for j, _ in pairs) + len(trailing)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 200), st.integers(1, 50), st.lists(st.integers(0, 10_000), max_size=8))
def test_oversize_frame_raises_wherever_it_is_cut(limit: int, extra: int, cuts: list[int]) -> None:
    ok = b"A" * limit
    too_big = b"MSH|" + b"B" * (limit + extra - 4) if limit + extra > 4 else b"B" * (limit + extra)
    stream = frame(ok) + frame(too_big)
    decoder = FrameDecoder(max_frame_bytes=limit)
    got: list[bytes] = []
    with pytest.raises(FrameTooLarge) as info:
        for chunk in _chunk(stream, cuts):
            got.extend(decoder.feed(chunk))
    # The frame at the limit is delivered, either before the error or on the exception.
    assert got + info.value.frames == [ok]
    assert too_big.startswith(decoder.oversize_prefix) and decoder.oversize_prefix


def test_frame_exactly_at_limit_passes_one_byte_over_fails() -> None:
    assert FrameDecoder(max_frame_bytes=10).feed(frame(b"x" * 10)) == [b"x" * 10]
    with pytest.raises(FrameTooLarge):
        FrameDecoder(max_frame_bytes=10).feed(frame(b"x" * 11))


def test_oversize_detected_before_the_end_block_arrives() -> None:
    decoder = FrameDecoder(max_frame_bytes=1000)
    decoder.feed(START_BLOCK + b"MSH|^~\\&|" + b"x" * 500)
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"y" * 600)  # still no end block: the limit must not wait for it
    assert decoder.oversize_prefix.startswith(b"MSH|^~\\&|")
    assert len(decoder.oversize_prefix) <= 4096
    assert not decoder.partial


def test_lone_fs_inside_a_frame_is_data() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(START_BLOCK + b"a\x1cb\x1c") == []
    assert decoder.partial
    assert decoder.feed(b"c" + END_BLOCK) == [b"a\x1cb\x1cc"]


def test_end_block_split_between_reads() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(START_BLOCK + b"MSH|x\x1c") == []
    assert decoder.feed(b"\r") == [b"MSH|x"]
    assert not decoder.partial


def test_partial_tracks_unfinished_frames_and_crlf_after_end_block_is_junk() -> None:
    decoder = FrameDecoder()
    assert not decoder.partial
    assert decoder.feed(frame(b"one") + b"\n" + START_BLOCK + b"tw") == [b"one"]
    assert decoder.partial
    assert decoder.feed(b"o" + END_BLOCK + b"\r\n\x00") == [b"two"]
    assert not decoder.partial
    assert decoder.junk_bytes == 4
