"""LZ-string (npm `lz-string` 1.5.0) compression, as BPJS VClaim uses it inside encrypted responses.

JavaScript strings are sequences of UTF-16 code units, and lz-string works on those units: a
character outside the Basic Multilingual Plane (an emoji) is two units, a surrogate pair. The PyPI
`lzstring` port iterates Python code points instead and so produces different output for such
text; this port turns text into UTF-16 code units first (`surrogatepass` keeps lone surrogates)
and back again at the end, and is checked against vectors computed with the JS reference.
"""
from __future__ import annotations

from collections.abc import Callable

BASE64_KEYS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
URI_KEYS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-$"
_BASE64_VALUES = {char: index for index, char in enumerate(BASE64_KEYS)}
_URI_VALUES = {char: index for index, char in enumerate(URI_KEYS)}


class LZStringError(ValueError):
    """The input is not an lz-string stream (the JS library answers null)."""


def _to_units(text: str) -> str:
    """Text as a str of UTF-16 code units, one Python character per unit (surrogates kept)."""
    data = text.encode("utf-16-le", "surrogatepass")
    return "".join(chr(data[i] | (data[i + 1] << 8)) for i in range(0, len(data), 2))


def _from_units(units: str) -> str:
    raw = b"".join(ord(unit).to_bytes(2, "little") for unit in units)
    return raw.decode("utf-16-le", "surrogatepass")


def _compress(units: str, bits_per_char: int, char_of: Callable[[int], str]) -> str:
    dictionary: dict[str, int] = {}
    to_create: set[str] = set()
    w = ""
    enlarge_in = 2
    dict_size = 3
    num_bits = 2
    out: list[str] = []
    value = 0
    position = 0

    def write(bits: int, count: int) -> None:     # least significant bit first, as the JS does
        nonlocal value, position
        for _ in range(count):
            value = (value << 1) | (bits & 1)
            if position == bits_per_char - 1:
                position = 0
                out.append(char_of(value))
                value = 0
            else:
                position += 1
            bits >>= 1

    def emit(phrase: str) -> None:
        nonlocal enlarge_in, num_bits
        if phrase in to_create:
            code = ord(phrase[0])
            if code < 256:
                write(0, num_bits)
                write(code, 8)
            else:
                write(1, num_bits)
                write(code, 16)
            enlarge_in -= 1
            if enlarge_in == 0:
                enlarge_in = 2 ** num_bits
                num_bits += 1
            to_create.discard(phrase)
        else:
            write(dictionary[phrase], num_bits)
        enlarge_in -= 1
        if enlarge_in == 0:
            enlarge_in = 2 ** num_bits
            num_bits += 1

    for char in units:
        if char not in dictionary:
            dictionary[char] = dict_size
            dict_size += 1
            to_create.add(char)
        joined = w + char
        if joined in dictionary:
            w = joined
        else:
            emit(w)
            dictionary[joined] = dict_size
            dict_size += 1
            w = char
    if w:
        emit(w)
    write(2, num_bits)                             # end of stream
    while True:                                    # flush the last partial character
        value <<= 1
        if position == bits_per_char - 1:
            out.append(char_of(value))
            break
        position += 1
    return "".join(out)


def _decompress(length: int, reset_value: int, next_value: Callable[[int], int]) -> str:
    dictionary: dict[int, str] = {}
    enlarge_in = 4
    dict_size = 4
    num_bits = 3
    data_value = next_value(0)
    data_position = reset_value
    data_index = 1

    def read(count: int) -> int:
        nonlocal data_value, data_position, data_index
        bits = 0
        power = 1
        for _ in range(count):
            bit = data_value & data_position
            data_position >>= 1
            if data_position == 0:
                data_position = reset_value
                data_value = next_value(data_index)
                data_index += 1
            if bit:
                bits |= power
            power <<= 1
        return bits

    first = read(2)
    if first == 0:
        char = chr(read(8))
    elif first == 1:
        char = chr(read(16))
    elif first == 2:
        return ""
    else:
        raise LZStringError("not an lz-string stream")
    dictionary[3] = char
    w = char
    result = [char]
    while True:
        if data_index > length:
            raise LZStringError("lz-string stream ends without its end marker")
        code = read(num_bits)
        if code in (0, 1):
            dictionary[dict_size] = chr(read(8 if code == 0 else 16))
            code = dict_size
            dict_size += 1
            enlarge_in -= 1
        elif code == 2:
            return "".join(result)
        if enlarge_in == 0:
            enlarge_in = 2 ** num_bits
            num_bits += 1
        if code in dictionary:
            entry = dictionary[code]
        elif code == dict_size:
            entry = w + w[0]
        else:
            raise LZStringError("lz-string stream refers to a phrase it never defined")
        result.append(entry)
        dictionary[dict_size] = w + entry[0]
        dict_size += 1
        enlarge_in -= 1
        w = entry
        if enlarge_in == 0:
            enlarge_in = 2 ** num_bits
            num_bits += 1


def _reader(text: str, values: dict[str, int]) -> Callable[[int], int]:
    def next_value(index: int) -> int:
        if index >= len(text):
            return 0
        try:
            return values[text[index]]
        except KeyError:
            raise LZStringError(f"character {text[index]!r} is not in the lz-string alphabet") from None
    return next_value


def compress_to_base64(text: str) -> str:
    out = _compress(_to_units(text), 6, BASE64_KEYS.__getitem__)
    return out + "=" * ((4 - len(out) % 4) % 4)


def decompress_from_base64(data: str) -> str:
    if data == "":
        return ""
    return _from_units(_decompress(len(data), 32, _reader(data, _BASE64_VALUES)))


def compress_to_encoded_uri_component(text: str) -> str:
    return _compress(_to_units(text), 6, URI_KEYS.__getitem__)


def decompress_from_encoded_uri_component(data: str) -> str:
    if data == "":
        return ""
    data = data.replace(" ", "+")     # as the JS does: '+' may arrive form-decoded as a space
    return _from_units(_decompress(len(data), 32, _reader(data, _URI_VALUES)))
