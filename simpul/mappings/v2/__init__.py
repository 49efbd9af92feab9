"""A fast, lenient HL7v2 reader for the mappings (no validation, no object tree).

`parse_message(text)` splits a decoded message into `Segment`s of raw field strings;
components, repetitions and escape sequences are only resolved when a map asks for them.
"""
from simpul.mappings.v2.encoding import Encoding
from simpul.mappings.v2.message import Message, Segment, parse_message

__all__ = ["Encoding", "Message", "Segment", "parse_message"]
