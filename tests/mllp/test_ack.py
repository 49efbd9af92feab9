"""ACK building and reading."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simpul.errors import AckUnreadable, HeaderError, MessageError
from simpul.mllp.ack import build_ack, read_ack
from simpul.v2 import read_header

WIB = timezone(timedelta(hours=7))
NOW = datetime(2024, 5, 1, 8, 30, 15, tzinfo=WIB)
ORU = (b"MSH|^~\\&|LIS|LAB^1.2^ISO|EHR|RSUD|20240501083000||ORU^R01^ORU_R01|LAB123|T|2.3.1\r"
       b"PID|1||999\r")


def _segments(ack: bytes) -> dict[str, list[str]]:
    assert ack.endswith(b"\r")
    return {seg[:3]: seg.split("|") for seg in ack.decode("latin-1").split("\r") if seg}


def test_aa_swaps_sender_and_receiver_and_echoes_control_id() -> None:
    ack = build_ack(read_header(ORU), "AA", ack_control_id="ACK1", now=NOW)
    seg = _segments(ack)
    msh, msa = seg["MSH"], seg["MSA"]
    assert msh[1] == "^~\\&"
    assert (msh[2], msh[3]) == ("EHR", "RSUD")  # MSH-3/4 = original MSH-5/6
    assert (msh[4], msh[5]) == ("LIS", "LAB^1.2^ISO")  # MSH-5/6 = original MSH-3/4
    assert msh[6] == "20240501083015+0700"
    assert msh[8] == "ACK^R01^ACK"
    assert msh[9] == "ACK1"
    assert (msh[10], msh[11]) == ("T", "2.3.1")
    assert msa[1:] == ["AA", "LAB123"]
    assert "ERR" not in seg
    assert read_ack(ack) == ("AA", "LAB123", "")


def test_defaults_name_us_when_original_msh5_msh6_are_empty() -> None:
    h = read_header(b"MSH|^~\\&|HIS|RS|||2024||ADT^A01|C9|P\r")
    msh = _segments(build_ack(h, "CA", ack_control_id="A2", now=NOW,
                              receiving_application="SIMPUL", receiving_facility="HUB"))["MSH"]
    assert (msh[2], msh[3], msh[4], msh[5]) == ("SIMPUL", "HUB", "HIS", "RS")
    assert msh[11] == "2.5.1"


def test_same_delimiters_as_the_original() -> None:
    h = read_header(b"MSH#$%\\*#HIS#RS$1#EHR#X#2024##ADT$A04#C77#P#2.5\r")
    ack = build_ack(h, "AE", ack_control_id="A3", now=NOW, text="bad | thing",
                    error=MessageError("PID-3 missing", segment="PID", field=3, hl7_error_code="101"))
    text = ack.decode()
    assert text.startswith("MSH#$%\\*#EHR#X#HIS#RS$1#")
    assert "#ACK$A04$ACK#A3#" in text
    assert "\rMSA#AE#C77#bad | thing\r" in text  # "|" is not a delimiter here
    assert "\rERR##PID$1$3#101$Required field missing$HL70357#E####PID-3 missing\r" in text
    assert read_ack(ack) == ("AE", "C77", "bad | thing")


def test_err_segment_and_escaping() -> None:
    error = MessageError("OBX|5^value ~ has \\ and & in it", segment="OBX", sequence=2, field=5,
                         hl7_error_code="102")
    ack = build_ack(read_header(ORU), "AE", error=error, ack_control_id="A4", now=NOW)
    err = ack.decode().split("\r")[2]
    assert err == ("ERR||OBX^2^5|102^Data type error^HL70357|E||||"
                   "OBX\\F\\5\\S\\value \\R\\ has \\E\\ and \\T\\ in it")
    code, control_id, text = read_ack(ack)
    assert (code, control_id) == ("AE", "LAB123")
    assert text == "OBX|5^value ~ has \\ and & in it"  # ERR-8 when MSA-3 is empty


def test_msa3_text_preferred_and_line_breaks_removed() -> None:
    ack = build_ack(read_header(ORU), "AR", text="rejected\rplease fix", ack_control_id="A5",
                    error=MessageError("unsupported", segment="MSH", field=9, hl7_error_code="200"),
                    now=NOW)
    assert ack.count(b"\r") == 3  # MSH, MSA, ERR
    assert b"|200^Unsupported message type^HL70357|" in ack
    assert read_ack(ack) == ("AR", "LAB123", "rejected please fix")


def test_ack_without_readable_header() -> None:
    with pytest.raises(HeaderError) as info:
        read_header(b"garbage")
    ack = build_ack(None, "AR", error=info.value, ack_control_id="A6", now=NOW)
    seg = _segments(ack)
    assert seg["MSH"][1] == "^~\\&"
    assert seg["MSH"][2] == "SIMPUL"
    assert seg["MSA"][1:] == ["AR", ""]
    assert seg["ERR"][2] == "MSH^1"
    assert seg["ERR"][3] == "100^Segment sequence error^HL70357"


def test_charset_echoed_and_bytes_round_trip() -> None:
    raw = "MSH|^~\\&|LAB \u00c9|X|EHR|Y|2024||ORU^R01|U7|P|2.5|||||IDN|UNICODE UTF-8\r".encode()
    ack = build_ack(read_header(raw), "AA", ack_control_id="A7", now=NOW)
    assert "LAB \u00c9".encode() in ack  # the original's bytes, untouched
    assert _segments(ack)["MSH"][17] == "UNICODE UTF-8"


def test_unknown_ack_code_is_refused() -> None:
    with pytest.raises(ValueError):
        build_ack(None, "OK", ack_control_id="A8")


@pytest.mark.parametrize("payload", [b"", b"MSH|^~\\&|A\r", b"MSH|^~\\&|A\rMSA||X\r", b"garbage"])
def test_read_ack_without_msa_code(payload: bytes) -> None:
    with pytest.raises(AckUnreadable):
        read_ack(payload)


def test_read_ack_tolerates_lf_and_no_msh() -> None:
    assert read_ack(b"MSA|CA|Z1\n") == ("CA", "Z1", "")


def test_read_ack_keeps_formatting_escapes_as_the_peer_wrote_them() -> None:
    ack = b"MSH|^~\\&|A|B|||2024||ACK|1|P|2.5\rMSA|AE|C1|bad \\F\\ value \\H\\here\\N\\ \\\r"
    assert read_ack(ack)[2] == "bad | value \\H\\here\\N\\ \\"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200).map(lambda b: b.replace(b"MSA", b"") + b"\rMSA" + b[:20])
       | st.binary(max_size=200))
def test_read_ack_on_any_bytes_returns_or_raises_ack_unreadable(payload: bytes) -> None:
    try:
        code, control_id, text = read_ack(payload)
    except AckUnreadable:
        return
    assert code and isinstance(control_id, str) and isinstance(text, str)
