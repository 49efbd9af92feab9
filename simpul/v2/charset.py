"""MSH-18 character sets to Python codecs, and decoding with a configured fallback.

The raw bytes are always stored byte-exact; decoding only decides whether the engine can read the
message (and is repeated from the stored bytes when the message is mapped).
"""
from __future__ import annotations

import codecs

from simpul.errors import CharsetError

__all__ = ["MSH18_CODECS", "codec_for", "decode_message"]

# HL7 table 0211 (alternate character sets) and the spellings senders use in practice.
MSH18_CODECS = {
    "": "",
    "ASCII": "ascii", "ISO IR6": "ascii",
    "8859/1": "latin-1", "ISO IR100": "latin-1", "ISO-8859-1": "latin-1",
    "8859/2": "iso8859-2", "8859/3": "iso8859-3", "8859/4": "iso8859-4", "8859/5": "iso8859-5",
    "8859/6": "iso8859-6", "8859/7": "iso8859-7", "8859/8": "iso8859-8", "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    # Senders write the part number off ("8859") or spell the codec name; all mean Latin-1.
    "8859": "latin-1", "ISO-8859": "latin-1", "ISO8859-1": "latin-1", "LATIN1": "latin-1", "LATIN-1": "latin-1",
    "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "ISO IR192": "utf-8",
    # Bare "UNICODE" was meant as UCS-2 in v2.3 but senders use it for UTF-8 text.
    "UNICODE": "utf-8",
    "UNICODE UTF-16": "utf-16", "UNICODE UTF-32": "utf-32",
    "GB 18030-2000": "gb18030", "KS X 1001": "euc-kr", "BIG-5": "big5",
    "ISO IR87": "iso2022_jp", "JAS2020": "iso2022_jp", "JIS X 0202": "iso2022_jp",
    "WINDOWS-1252": "cp1252", "CP1252": "cp1252",
}


def codec_for(msh_18: str, default: str = "utf-8") -> str:
    """The codec for an MSH-18 value; CharsetError (ERR at MSH-18) for one we do not know."""
    name = msh_18.strip().upper()
    codec = MSH18_CODECS.get(name)
    if codec is None:
        raise CharsetError("unknown character set in MSH-18", segment="MSH", field=18, hl7_error_code="103")
    return codec or default


def decode_message(raw: bytes, msh_18: str, *, default: str = "utf-8",
                   fallback: str | None = None) -> tuple[str, str]:
    """Decode the whole message; returns (text, codec used).

    A BOM is dropped. Bytes that do not decode in the declared charset are tried with the
    fallback, if configured; otherwise CharsetError, which the ACK reports as AE at MSH-18.
    """
    codec = codec_for(msh_18, default)
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[3:]
        if codec in ("ascii", "utf-8"):
            codec = "utf-8"
    try:
        return raw.decode(codec), codec
    except UnicodeDecodeError as exc:
        if fallback:
            try:
                return raw.decode(fallback), fallback
            except UnicodeDecodeError:
                pass
        raise CharsetError(f"byte {exc.start} does not decode as {codec} (declared in MSH-18)",
                           segment="MSH", field=18, hl7_error_code="102") from None
