"""MSH-1/MSH-2 delimiters and the escape sequences they imply (HL7 v2.x chapter 2.7), both ways.

This is the only place Simpul escapes or unescapes ER7 text: the ACK writer, the mapping's reader,
the FHIR->v2 writer and the ACK reader all call :func:`escape` and :func:`unescape`.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field  # "field" is also the MSH-1 attribute below
from typing import Literal

from simpul.errors import HeaderError

__all__ = ["Delimiters", "DEFAULT", "read_delimiters", "escape", "unescape", "transcode"]


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The delimiters of one message: MSH-1 and the MSH-2 encoding characters.

    ``truncation`` is the optional fifth MSH-2 character (v2.7+). It is data, not a delimiter:
    a value containing it is read as it stands, and the escape ``\\P\\`` stands for it.
    """

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""
    # MSH-2 as it is written: four characters, five with the truncation character (computed once:
    # the ingest hot path reads it for every message).
    encoding_characters: str = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoding_characters", self.component + self.repetition + self.escape
                           + self.subcomponent + self.truncation)

    def decode(self, raw: str) -> str:
        """Text of one leaf value: escape sequences resolved, the explicit null ``""`` -> ``""``."""
        if raw == '""':
            return ""
        return unescape(raw, self)

    def encode(self, text: str) -> str:
        """ER7 text of one leaf value (delimiters escaped, line breaks as ``\\.br\\``)."""
        return escape(text, self)


DEFAULT = Delimiters()

# Senders reuse one MSH-1/MSH-2 pair for every message: read each pair once.
_known: dict[tuple[str, str], Delimiters] = {("|", "^~\\&"): DEFAULT}
_KNOWN_LIMIT = 64


def read_delimiters(field_separator: str, msh_2: str) -> Delimiters:
    """The delimiters named by MSH-1 and MSH-2, or :class:`HeaderError` (MSH-1 or MSH-2, code 102).

    MSH-1 is one character that is neither alphanumeric nor white space. MSH-2 is 4 or 5 distinct
    such characters; ``^~\\\\&`` (the escape character written twice, a string-escaping slip some
    senders make) is read as ``^~\\&``, since a fifth character equal to another is no truncation
    character.
    """
    found = _known.get((field_separator, msh_2))
    if found is not None:
        return found
    if len(field_separator) != 1 or field_separator.isalnum() or field_separator.isspace():
        raise HeaderError("MSH-1 field separator is not a usable delimiter", segment="MSH", field=1)
    chars = msh_2
    if len(chars) == 5 and len(set(chars)) == 4:
        chars = "".join(dict.fromkeys(chars))
    if not (4 <= len(chars) <= 5 and len(set(chars)) == len(chars)
            and not any(c.isalnum() or c.isspace() for c in chars)):
        raise HeaderError("MSH-2 encoding characters are not 4 or 5 distinct delimiters",
                          segment="MSH", field=2)
    found = Delimiters(field_separator, chars[0], chars[1], chars[2], chars[3], chars[4:5])
    if len(_known) < _KNOWN_LIMIT:
        _known[(field_separator, msh_2)] = found
    return found


def escape(text: str, delimiters: Delimiters = DEFAULT, *,
           line_breaks: Literal["escape", "space"] = "escape") -> str:
    """Plain text -> ER7 text: delimiters become ``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` (``\\P\\`` for the
    truncation character).

    Line breaks become ``\\.br\\`` (a raw CR would end the segment); ``line_breaks="space"`` writes a
    space instead, for short texts read by people in a terminal (ACK MSA-3, ERR-8).
    """
    if text.isalnum():  # the usual code or control id: nothing to escape
        return text
    e = delimiters.escape
    # The escape character first, so the sequences added below are not escaped again.
    out = text.replace(e, f"{e}E{e}")
    for char, code in ((delimiters.field, "F"), (delimiters.component, "S"),
                       (delimiters.subcomponent, "T"), (delimiters.repetition, "R")):
        out = out.replace(char, f"{e}{code}{e}")
    if delimiters.truncation:
        out = out.replace(delimiters.truncation, f"{e}P{e}")
    if "\r" in out or "\n" in out:
        brk = " " if line_breaks == "space" else f"{e}.br{e}"
        out = out.replace("\r\n", brk).replace("\r", brk).replace("\n", brk)
    return out


# \H\ \N\ (highlight on/off) carry no text.
_FORMATTING_DROPPED = frozenset({"H", "N"})


def unescape(raw: str, delimiters: Delimiters = DEFAULT, *, formatting: bool = True) -> str:
    """ER7 text -> plain text. An unterminated escape is kept as it stands (lenient).

    With ``formatting`` (the default) every sequence is resolved: ``\\.br\\`` and ``\\.sp\\`` become a
    line break, other formatting commands, highlighting and character-set switches are dropped and
    ``\\Xhh..\\`` becomes its bytes (UTF-8, else Latin-1). With ``formatting=False`` only the delimiter
    sequences are resolved and any other sequence is kept literally (for text shown as received).
    """
    e = delimiters.escape
    if e not in raw:
        return raw
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        j = raw.find(e, i)
        if j < 0:
            out.append(raw[i:])
            break
        out.append(raw[i:j])
        k = raw.find(e, j + 1)
        if k < 0:
            out.append(raw[j:])
            break
        out.append(_sequence(raw[j + 1:k], delimiters, formatting))
        i = k + 1
    return "".join(out)


def transcode(value: str, source: Delimiters, target: Delimiters = DEFAULT) -> str:
    """One ER7 field value written with ``source`` delimiters, rewritten for ``target``.

    Repetitions, components and subcomponents keep their structure; delimiter escapes are re-escaped
    for the target and every other sequence (formatting, hex, charset) is kept with the target's
    escape character. Used to echo a header read from one message in a message written with others.
    """
    if source == target:
        return value
    return target.repetition.join(
        target.component.join(
            target.subcomponent.join(_transcode_leaf(leaf, source, target)
                                     for leaf in component.split(source.subcomponent))
            for component in repetition.split(source.component))
        for repetition in value.split(source.repetition))


def _transcode_leaf(raw: str, source: Delimiters, target: Delimiters) -> str:
    e = source.escape
    out: list[str] = []
    i = 0
    while True:
        j = raw.find(e, i)
        k = raw.find(e, j + 1) if j >= 0 else -1
        if k < 0:  # no further complete sequence: the rest is text
            out.append(escape(raw[i:], target))
            return "".join(out)
        out.append(escape(raw[i:j], target))
        body = raw[j + 1:k]
        if body in _DELIMITER_CODES:
            out.append(escape(_sequence(body, source, False), target))
        else:
            out.append(target.escape + body + target.escape)
        i = k + 1


_DELIMITER_CODES = frozenset({"F", "S", "T", "R", "E", "P"})


def _sequence(body: str, d: Delimiters, formatting: bool) -> str:
    if body == "F":
        return d.field
    if body == "S":
        return d.component
    if body == "T":
        return d.subcomponent
    if body == "R":
        return d.repetition
    if body == "E":
        return d.escape
    if body == "P" and (d.truncation or formatting):
        return d.truncation
    if not formatting:
        return d.escape + body + d.escape
    if body == ".br":
        return "\n"
    if body in _FORMATTING_DROPPED:
        return ""
    if body[:1] == "X" and len(body) > 1:
        return _hex_text(body[1:])
    if body[:1] == ".":  # .sp .in .ti .sk .ce .fi .nf: layout hints, not text
        return "\n" if body.startswith(".sp") else ""
    if body[:1] in ("C", "M", "Z"):  # charset switches and locally defined escapes
        return ""
    return d.escape + body + d.escape


def _hex_text(hexdigits: str) -> str:
    try:
        data = bytes.fromhex(hexdigits)
    except ValueError:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
