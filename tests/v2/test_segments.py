"""Segment, message and batch boundaries (simpul.v2.segments) and the header reader's view of them."""
from __future__ import annotations

import pytest

from simpul.errors import MessageError
from simpul.v2 import check_no_binary, parse_message, read_header, split_file, split_messages, split_segments

BATCH = (b"\xef\xbb\xbfFHS|^~\\&|HIS\r\nBHS|^~\\&|HIS\r\nMSH|^~\\&|HIS|RS|||2024||ADT^A01|M1|P|2.5\r\nPID|1||A\r\n"
         b"MSH|^~\\&|HIS|RS|||2024||ADT^A08|M2|P|2.5\nPID|1||B\n\nBTS|2\nFTS|1\n")


def test_split_segments_on_cr_lf_and_crlf_keeps_blank_lines() -> None:
    assert split_segments("A\rB\nC\r\nD\r\rE") == ["A", "B", "C", "D", "", "E"]


def test_a_batch_file_splits_into_its_messages_with_cr_terminators() -> None:
    assert split_messages(BATCH) == [b"MSH|^~\\&|HIS|RS|||2024||ADT^A01|M1|P|2.5\rPID|1||A\r",
                                     b"MSH|^~\\&|HIS|RS|||2024||ADT^A08|M2|P|2.5\rPID|1||B\r"]


def test_batch_counts_that_add_up_are_no_problem_and_those_that_do_not_are_named() -> None:
    assert split_file(BATCH).problems == [] and split_file(BATCH).batches == 1
    short = BATCH.replace(b"BTS|2", b"BTS|3").replace(b"FTS|1", b"FTS|2")
    found = split_file(short)
    assert found.messages == split_messages(BATCH)   # the messages are the same; the file is not whole
    assert found.problems == ["batch 1: BTS-1 says 3 message(s), the batch holds 2",
                              "FTS-1 says 2 batch(es), the file holds 1"]


def test_lines_before_the_first_msh_are_kept_for_the_reader_to_refuse() -> None:
    (junk, message) = split_messages(b"hello\rMSH|^~\\&|A|B|||2024||ADT^A01|1|P|2.5\r")
    assert junk == b"hello\r" and message.startswith(b"MSH")
    assert split_messages(b" \r\n\r") == []


def test_a_batch_envelope_around_one_message_reads_as_that_message() -> None:
    one = b"FHS|^~\\&|HIS\rBHS|^~\\&|HIS\rMSH|^~\\&|HIS|RS|||2024||ADT^A01|M1|P|2.5\rPID|1||A\rBTS|1\rFTS|1\r"
    assert read_header(one).control_id == "M1"
    message = parse_message(one.decode())
    assert [segment.name for segment in message] == ["MSH", "PID"]
    assert message.header is not None and message.header.control_id == "M1"


def test_escaped_msh_values_stay_as_sent_and_read_as_text_on_request() -> None:
    header = read_header(b"MSH|^~\\&|LAB\\T\\MAIN|RS|||2024||ADT^A01|C\\F\\1|P|2.5\r")
    assert (header.sending_application, header.control_id) == ("LAB\\T\\MAIN", "C\\F\\1")
    assert (header.text(header.sending_application), header.text(header.control_id)) == ("LAB&MAIN", "C|1")


@pytest.mark.parametrize("text, line", [("MSH|x\rPID|\x00", 2), ("MSH|\x1b", 1)])
def test_control_characters_are_refused_naming_the_line(text: str, line: int) -> None:
    with pytest.raises(MessageError) as info:
        check_no_binary(text, split_segments(text))
    assert info.value.reason == f"line {line} contains binary data (a control character)"
    assert "\x00" not in str(info.value)
