"""Escaping both ways (simpul.v2.delimiters): the one implementation every writer and reader uses."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simpul.errors import HeaderError
from simpul.v2 import DEFAULT, Delimiters, escape, read_delimiters, transcode, unescape

V27 = read_delimiters("|", "^~\\&#")


@given(st.text(alphabet=st.sampled_from("ab |^~\\&#")))
def test_escape_then_unescape_gives_the_text_back(text: str) -> None:
    for delimiters in (DEFAULT, V27, Delimiters("*", ":", "!", "$", "@", "#")):
        escaped = escape(text, delimiters)
        assert delimiters.field not in escaped and delimiters.component not in escaped
        assert unescape(escaped, delimiters) == text
        assert unescape(escaped, delimiters, formatting=False) == text


def test_truncation_character_is_escaped_only_when_msh2_names_one() -> None:
    assert escape("50#", V27) == "50\\P\\"
    assert escape("50#", DEFAULT) == "50#"


@pytest.mark.parametrize("line_breaks, expected", [("escape", "a\\.br\\b\\.br\\c\\.br\\d"), ("space", "a b c d")])
def test_line_breaks_never_end_a_segment(line_breaks: str, expected: str) -> None:
    assert escape("a\r\nb\rc\nd", DEFAULT, line_breaks=line_breaks) == expected  # type: ignore[arg-type]


def test_without_formatting_only_delimiter_sequences_are_resolved() -> None:
    raw = "x \\F\\ \\H\\bold\\N\\ \\.br\\ \\X41\\ \\P\\ trailing \\"
    assert unescape(raw, DEFAULT, formatting=False) == "x | \\H\\bold\\N\\ \\.br\\ \\X41\\ \\P\\ trailing \\"
    assert unescape(raw, DEFAULT) == "x | bold \n A  trailing \\"


@pytest.mark.parametrize("sep, msh_2, field", [("A", "^~\\&", 1), (" ", "^~\\&", 1), ("|", "^~", 2),
                                                ("|", "^~\\&#$", 2), ("|", "^^\\&", 2), ("|", "^~\\a", 2)])
def test_unusable_delimiters_are_a_header_error(sep: str, msh_2: str, field: int) -> None:
    with pytest.raises(HeaderError) as info:
        read_delimiters(sep, msh_2)
    assert (info.value.segment, info.value.field, info.value.hl7_error_code) == ("MSH", field, "102")


def test_doubled_escape_character_reads_as_four_delimiters() -> None:
    assert read_delimiters("|", "^~\\\\&") == DEFAULT
    assert read_delimiters("|", "^~\\&#").truncation == "#"
    assert read_delimiters("|", "^~\\&#").encoding_characters == "^~\\&#"


def test_transcode_rewrites_a_value_for_other_delimiters() -> None:
    custom = Delimiters("#", "$", "%", "!", "*")
    # "!T!" is custom's subcomponent separator as text ("*": plain text under |^~\&); a literal "^" is
    # plain under custom but a delimiter under |^~\&.
    value = "LAB$1.2!T!3^4$ISO%SECOND*SUB$x!H!bold!N!"
    assert transcode(value, custom, DEFAULT) == "LAB^1.2*3\\S\\4^ISO~SECOND&SUB^x\\H\\bold\\N\\"
    assert transcode("50\\P\\ a#b", V27, DEFAULT) == "50# a#b"
    assert transcode("x\\F\\y", DEFAULT, DEFAULT) == "x\\F\\y"
