"""The mappings' message model (simpul.v2.message): separators, escapes, the explicit null, repetitions,
encoding characters."""
from __future__ import annotations

import pytest

from simpul.errors import HeaderError
from simpul.v2 import Delimiters, parse_message, read_delimiters


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segments_split_on_any_line_ending(sep: str) -> None:
    m = parse_message(sep.join(["MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5", "PID|1||42", "PV1|1|I"]) + sep)
    assert [s.name for s in m] == ["MSH", "PID", "PV1"]
    assert m.one("PID").text(3) == "42"


def test_leading_bom_and_msh_numbering() -> None:
    m = parse_message("\ufeffMSH|^~\\&|APP|FAC|||20240101||ORU^R01^ORU_R01|C9|P|2.5.1")
    assert m.msh[1] == "|" and m.msh[2] == "^~\\&"
    assert (m.message_code, m.trigger_event, m.structure, m.control_id) == ("ORU", "R01", "ORU_R01", "C9")


@pytest.mark.parametrize("raw, text", [
    (r"A\F\B", "A|B"), (r"A\S\B", "A^B"), (r"A\T\B", "A&B"), (r"A\R\B", "A~B"), (r"A\E\B", "A\\B"),
    (r"line1\.br\line2", "line1\nline2"), ("\\X41424344\\", "ABCD"), ("caf\\XC3A9\\", "café"),
    ("\\H\\bold\\N\\", "bold"), ("50\\P\\", "50#"), (r"unterminated\F", r"unterminated\F"),
])
def test_escape_sequences(raw: str, text: str) -> None:
    enc = read_delimiters("|", "^~\\&#")
    assert enc.decode(raw) == text


def test_escaped_delimiters_do_not_split_components() -> None:
    m = parse_message("MSH|^~\\&|A|B|||20240101||ADT^A01|1|P|2.5\rPID|1||42||O\\S\\Brien^Ann")
    pid = m.one("PID")
    assert pid.text(5, 1) == "O^Brien" and pid.text(5, 2) == "Ann"


def test_explicit_null_is_never_text() -> None:
    m = parse_message('MSH|^~\\&|A|B|||20240101||ADT^A01|1|P|2.5\rPID|1||42||""^Ann|""')
    pid = m.one("PID")
    assert pid.text(5, 1) == "" and pid.text(6) == "" and pid.reps(6) == []


def test_repetitions_skip_empty_and_null() -> None:
    m = parse_message('MSH|^~\\&|A|B|||20240101||ADT^A01|1|P|2.5\rPID|1||a~~""~b')
    assert m.one("PID").reps(3) == ["a", "b"]


def test_custom_encoding_characters_with_truncation_char() -> None:
    text = "MSH*:!$@#*APP*FAC*****ADT:A01*7*P*2.7\rPID*1**42!43**Doe:Jo$hn@x*long value#"
    m = parse_message(text)
    assert m.enc == Delimiters("*", ":", "!", "$", "@", "#")
    pid = m.one("PID")
    assert pid.reps(3) == ["42", "43"]
    # '@' is the subcomponent separator here; "$hn" is an unterminated escape ('$'), kept as it stands
    assert pid.text(5, 2) == "Jo$hn" and pid.text(5, 2, 2) == "x"
    assert pid.text(6) == "long value#"  # the truncation char is data, not a delimiter
    assert m.trigger_event == "A01"


def test_doubled_escape_char_in_msh2_is_tolerated() -> None:
    m = parse_message("MSH|^~\\\\&|A|B|||20240101||ADT^A01|1|P|2.6\rPID|1||42^^^X&Y")
    assert m.enc.subcomponent == "&" and m.one("PID").text(3, 4, 2) == "Y"


def test_wrapped_line_continues_previous_segment() -> None:
    m = parse_message("MSH|^~\\&|A|B|||20240101||ORU^R01|1|P|2.5\rOBX|1|ED|X||^AP^PDF^Base64^AAAA\nBBBB\rNTE|1")
    assert [s.name for s in m] == ["MSH", "OBX", "NTE"]
    assert m.one("OBX").text(5, 5) == "AAAABBBB"


@pytest.mark.parametrize("text", ["", "PID|1||42", "MSH|"])
def test_no_msh_is_a_header_error(text: str) -> None:
    with pytest.raises(HeaderError) as info:
        parse_message(text)
    assert info.value.segment == "MSH"
