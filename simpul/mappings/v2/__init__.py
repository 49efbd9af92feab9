"""The mappings' view of the ER7 reader in :mod:`simpul.v2` (one reader for all of Simpul).

`parse_message(text)` splits a decoded message into `Segment`s of raw field strings;
components, repetitions and escape sequences are only resolved when a map asks for them.
`Encoding` is the mappings' name for `simpul.v2.Delimiters`.
"""
from simpul.v2 import Delimiters as Encoding
from simpul.v2 import Message, Segment, parse_message

__all__ = ["Encoding", "Message", "Segment", "parse_message"]
