"""HL7 v2 ER7 syntax, pure: no I/O, imports only :mod:`simpul.errors` and the standard library.

Every part of Simpul that reads or writes ER7 text goes through this package, so a message is
accepted or refused the same way by the MLLP listener, ``simpul map``, ``simpul conformance``, the
mappings and the FHIR->v2 writer.

    delimiters.py      Delimiters (MSH-1, MSH-2 incl. the v2.7+ truncation character), escape/unescape,
                       transcode (a value from one set of delimiters to another)
    segments.py        segment split (CR, LF, CRLF), batch/file split into messages (with envelope counts), binary check
    header.py          MessageHeader, read_header (bytes, hot path), read_msh_line (text), is_enhanced_mode
    charset.py         MSH-18 -> codec, decode with fallback
    read.py            read_message: header -> charset -> lines -> binary check, the one sequence
    message.py         parse_message: Segment/Message model the mappings read
    business_keys.py   PID-3 MRN, PV1-19, ORC/OBR order numbers, accession
    er7.py             building outbound ER7 text (fields, segments, MSH)
"""
from __future__ import annotations

from .business_keys import BusinessKeys, extract_business_keys, study_uid_for_accession
from .charset import MSH18_CODECS, codec_for, decode_message
from .delimiters import DEFAULT, Delimiters, escape, read_delimiters, transcode, unescape
from .header import MessageHeader, is_enhanced_mode, read_header, read_msh_delimiters, read_msh_line
from .message import Message, Segment, parse_message
from .read import ReadMessage, read_body, read_message
from .segments import (BATCH_SEGMENTS, SEGMENT_TERMINATOR, SplitFile, check_no_binary, join_segments,
                       split_file, split_messages, split_segments)

__all__ = [
    "BATCH_SEGMENTS", "BusinessKeys", "DEFAULT", "Delimiters", "MSH18_CODECS", "Message", "MessageHeader",
    "ReadMessage", "SEGMENT_TERMINATOR", "Segment", "SplitFile", "check_no_binary", "codec_for", "decode_message",
    "escape", "extract_business_keys", "is_enhanced_mode", "join_segments", "parse_message", "read_body",
    "read_delimiters", "read_header", "read_message", "read_msh_delimiters", "read_msh_line",
    "split_file", "split_messages", "split_segments", "study_uid_for_accession", "transcode", "unescape",
]
