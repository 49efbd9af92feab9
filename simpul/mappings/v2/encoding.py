"""MSH-1/MSH-2 encoding characters and the escape sequences they imply (HL7 v2.x chapter 2.7)."""
from __future__ import annotations

from dataclasses import dataclass

# \H\ \N\ (highlight on/off) and the formatting commands other than .br carry no text.
_FORMATTING_DROPPED = {"H", "N"}


@dataclass(frozen=True, slots=True)
class Encoding:
    """Delimiters of one message: MSH-1 field separator and the MSH-2 characters.

    `truncation` is the optional 5th MSH-2 character (v2.7+); it is data, not a delimiter,
    and the escape \\P\\ stands for it.
    """

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @classmethod
    def from_msh(cls, field_separator: str, msh_2: str) -> "Encoding":
        """Read MSH-2 leniently: duplicated characters (a doubled backslash from a badly
        quoted source) are collapsed, missing ones fall back to the defaults."""
        chars: list[str] = []
        for ch in msh_2:
            if ch not in chars and ch != field_separator:
                chars.append(ch)
        defaults = ["^", "~", "\\", "&"]
        while len(chars) < 4:
            chars.append(next(d for d in defaults if d not in chars and d != field_separator))
        return cls(field_separator, chars[0], chars[1], chars[2], chars[3],
                   chars[4] if len(chars) > 4 else "")

    def decode(self, raw: str) -> str:
        """Text of one leaf value: escape sequences resolved, the explicit null "" -> ""."""
        if raw == '""':
            return ""
        esc = self.escape
        if esc not in raw:
            return raw
        out: list[str] = []
        i = 0
        n = len(raw)
        while i < n:
            j = raw.find(esc, i)
            if j < 0:
                out.append(raw[i:])
                break
            out.append(raw[i:j])
            k = raw.find(esc, j + 1)
            if k < 0:  # an unterminated escape is kept as it stands (lenient)
                out.append(raw[j:])
                break
            out.append(self._sequence(raw[j + 1:k]))
            i = k + 1
        return "".join(out)

    def _sequence(self, body: str) -> str:
        if body == "F":
            return self.field
        if body == "S":
            return self.component
        if body == "T":
            return self.subcomponent
        if body == "R":
            return self.repetition
        if body == "E":
            return self.escape
        if body == "P":
            return self.truncation
        if body == ".br":
            return "\n"
        if body in _FORMATTING_DROPPED:
            return ""
        if body[:1] == "X" and len(body) > 1:
            return _hex_text(body[1:])
        if body[:1] == "." :  # .sp .in .ti .sk .ce .fi .nf: layout hints, not text
            return "\n" if body.startswith(".sp") else ""
        if body[:1] in ("C", "M", "Z"):  # charset switches and locally defined escapes
            return ""
        return self.escape + body + self.escape

    def encode(self, text: str) -> str:
        """The inverse of `decode` for the delimiters (used when building v2 text in tests)."""
        e = self.escape
        out = text.replace(e, f"{e}E{e}")
        for ch, code in ((self.field, "F"), (self.component, "S"), (self.subcomponent, "T"),
                         (self.repetition, "R")):
            out = out.replace(ch, f"{e}{code}{e}")
        return out.replace("\r\n", f"{e}.br{e}").replace("\n", f"{e}.br{e}")


def _hex_text(hexdigits: str) -> str:
    try:
        data = bytes.fromhex(hexdigits)
    except ValueError:
        return ""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
