"""The MSH reader (simpul.v2.header): the one every Simpul reader uses."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpul.errors import HeaderError
from simpul.mllp.ack import build_ack, read_ack
from simpul.v2 import is_enhanced_mode, read_header

ADT = (b"MSH|^~\\&|HIS|RSUD^2.16.360^ISO|LIS|LAB|20240501083000+0700||ADT^A01^ADT_A01|MSG00001|P|2.5.1"
       b"|||AL|NE|IDN|UNICODE UTF-8~8859/1\rEVN|A01|20240501083000\rPID|1||12345^^^RSUD^MR||DOE^JOHN\r")


def test_reads_every_field() -> None:
    h = read_header(ADT)
    assert h.field_separator == "|"
    assert h.encoding_characters == "^~\\&"
    assert h.sending_application == "HIS"
    assert h.sending_facility == "RSUD^2.16.360^ISO"
    assert h.sending_facility_name == "RSUD"
    assert (h.receiving_application, h.receiving_facility) == ("LIS", "LAB")
    assert h.message_datetime == "20240501083000+0700"
    assert h.message_type == "ADT^A01"
    assert h.message_structure == "ADT_A01"
    assert h.trigger_event == "A01"
    assert h.control_id == "MSG00001"
    assert (h.processing_id, h.version_id) == ("P", "2.5.1")
    assert (h.accept_ack_type, h.application_ack_type) == ("AL", "NE")
    assert h.charset == "UNICODE UTF-8"  # first repetition only
    assert h.segment_terminator == b"\r"
    assert is_enhanced_mode(h)


def test_original_mode_when_msh15_and_msh16_are_empty() -> None:
    h = read_header(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X1|P|2.3\rOBR|1\r")
    assert not is_enhanced_mode(h)
    assert h.charset == "" and h.message_structure == ""
    h = read_header(b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|X1|P|2.3||||AL\r")
    assert is_enhanced_mode(h)


def test_other_delimiters_message_type_still_joined_with_caret() -> None:
    h = read_header(b"MSH#$%\\*#A#B#C#D#2024##ORM$O01$ORM_O01#C7#T#2.4\r")
    assert h.field_separator == "#"
    assert h.component_separator == "$"
    assert h.message_type == "ORM^O01"
    assert h.message_structure == "ORM_O01"
    assert h.control_id == "C7"


def test_five_encoding_characters_v27() -> None:
    h = read_header(b"MSH|^~\\&#|A|B|C|D|2024||ADT^A04|C1|P|2.7\r")
    assert h.encoding_characters == "^~\\&#"
    assert h.message_type == "ADT^A04"


@pytest.mark.parametrize(
    ("raw", "terminator"),
    [
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A08|LF1|P|2.5\nPID|1\n", b"\n"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A08|LF1|P|2.5\r\nPID|1\r\n", b"\r\n"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A08|LF1|P|2.5\rPID|1\r", b"\r"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A08|LF1|P|2.5", b"\r"),  # MSH alone, no terminator
    ],
)
def test_segment_terminators(raw: bytes, terminator: bytes) -> None:
    h = read_header(raw)
    assert h.segment_terminator == terminator
    assert h.version_id == "2.5"  # the terminator is not part of the last field
    assert h.control_id == "LF1"


def test_bom_and_leading_whitespace_are_tolerated() -> None:
    h = read_header(b"\xef\xbb\xbf\r\n  MSH|^~\\&|A|B|C|D|2024||ADT^A01|B1|P|2.5\r")
    assert h.control_id == "B1"


def test_any_byte_in_msh_is_readable() -> None:
    h = read_header("MSH|^~\\&|RS Pondok Indah \u00e9|B|C|D|2024||ADT^A01|U1|P|2.5\r".encode())
    assert h.control_id == "U1"
    assert h.sending_application.encode("latin-1").decode("utf-8") == "RS Pondok Indah \u00e9"


@pytest.mark.parametrize(
    ("raw", "field", "code"),
    [
        (b"PID|1||123\rMSH|^~\\&|A\r", 0, "100"),
        (b"", 0, "100"),
        (b"MSH", 1, "102"),
        (b"MSHA^~\\&|A|B|C|D|2024||ADT^A01|C1|P|2.5\r", 1, "102"),
        (b"MSH|^~|A|B|C|D|2024||ADT^A01|C1|P|2.5\r", 2, "102"),
        (b"MSH|^^\\&|A|B|C|D|2024||ADT^A01|C1|P|2.5\r", 2, "102"),
        (b"MSH|^~\\&|A|B|C|D|2024|||C1|P|2.5\r", 9, "101"),
        (b"MSH|^~\\&|A|B|C|D|2024||^A01|C1|P|2.5\r", 9, "101"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01||P|2.5\r", 10, "101"),
        (b"MSH|^~\\&|A|B|C|D|2024||ADT^A01\r", 10, "101"),
    ],
)
def test_header_errors_name_field_and_table_0357_code(raw: bytes, field: int, code: str) -> None:
    with pytest.raises(HeaderError) as info:
        read_header(raw)
    assert info.value.segment == "MSH"
    assert info.value.field == field
    assert info.value.hl7_error_code == code


def test_header_error_text_does_not_quote_the_message() -> None:
    with pytest.raises(HeaderError) as info:
        read_header(b"PID|1||SECRET-MRN^^^RS||DOE^JANE\r")
    assert "SECRET" not in str(info.value) and "DOE" not in str(info.value)


CORPUS = sorted((Path(__file__).parents[1] / "corpus").glob("*.hl7"))
# Two corpus files carry "^~\\&" (a doubled escape character): read as the four delimiters.
DOUBLED_ESCAPE = {"lfh-hl7v2-fhir-converter__sample_unix.hl7", "lfh-hl7v2-fhir-converter__sample_win.hl7"}


@pytest.mark.skipif(not CORPUS, reason="tests/corpus is not present")
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_real_world_corpus_headers(path: Path) -> None:
    raw = path.read_bytes()
    h = read_header(raw)
    if path.name in DOUBLED_ESCAPE:
        assert h.encoding_characters == "^~\\&"
    assert h.control_id and h.message_type[:3].isalpha()
    assert h.segment_terminator in (b"\r", b"\n", b"\r\n")


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=120).map(lambda b: b"MSH" + b),
    st.lists(st.sampled_from([b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"A01", b"MSH", b"\xff"]),
             max_size=40).map(lambda parts: b"MSH|^~\\&" + b"".join(parts)),
))
def test_any_bytes_give_a_header_or_a_header_error(raw: bytes) -> None:
    try:
        h = read_header(raw)
    except HeaderError as exc:
        assert exc.segment == "MSH" and exc.hl7_error_code in ("100", "101", "102")
    else:
        assert h.control_id and h.message_type
        # Whatever was read, an ACK can be built from it and read back.
        ack = build_ack(h, "AA", ack_control_id="X")
        assert read_ack(ack)[:2] == ("AA", h.control_id.strip())
