"""The published and cross-checked test vectors (docs: BPJS and SATUSEHAT): our crypto and
lz-string against the outside world (npm lz-string 1.5.0, Node crypto, OpenSSL), not only against
our own simulators."""
from __future__ import annotations

import pytest

from simpul.connectors.bpjs import crypto
from simpul.connectors.bpjs.lzstring import (
    LZStringError, compress_to_base64, compress_to_encoded_uri_component, decompress_from_base64,
    decompress_from_encoded_uri_component,
)

LZ_VECTORS = [
    ("Hello, world!", "BIUwNmD2A0AEDukBOYAmBCIA"),
    ('{"metaData":{"code":"200","message":"OK"}}',
     "N4IgtgpgLghgIjWIBcoDGB7AJhFIBMADISADTgQDOlMA5rsiAPIDSIAvu0A"),
    ("a" * 20, "IY1-kA"),
    ("Résumé – 日本 😀", "EoS4zgrgtiAEjIBLQp6aBpzWheDcAB7Q"),   # astral: where PyPI lzstring differs
]
PESERTA = ('{"peserta":{"noKartu":"0000000000001","nama":"BUDI","statusPeserta":'
           '{"kode":"0","keterangan":"AKTIF"}}}')
PESERTA_LZ = ("N4IgDgpgzhBOAuBDEAuUA7A9gaUQgrqiAAylnmkCMIANCOogLbIogBCAqgCICStIUJPHxQACtDhJUoANaYAJhCLF+MiPDiJ0A"
              "cy1EAgtgAqPAGIgAvlaA")
PESERTA_RESPONSE = ("XAOP8vY/DPu6OizeKmiB31Il84m16ALPsBGolGvQecX/QO9HuhZoCJxkU3pQ38SNuppJC9vxiF95uM3QogSvgOj1JkKuq"
                    "zS1fCW7IpLAnlNJZ+YG+WTye4NVVhniuKQeonJYct9MHJ3UXxXj/DkNyA0orYrY2qXpH4Jt8Iq29fA=")
EKLAIM_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
EKLAIM_IV = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
EKLAIM_PLAIN = b'{"metadata":{"method":"get_claim_status"},"data":{"nomor_sep":"0001R0016120666662"}}'
EKLAIM_PAYLOAD = ("SsVGqeVTdN0WiA8ODQwLCgkIBwYFBAMCAQCft1nGVVvTtYOdmm0BDqLbXKHxErYOOyWMRil0ZSQB\r\n"
                  "oqErc/NZEcaGzNaHsgtCYOy4Q2phC+AO2u3CqSJdxemxywopS1bhSMvo3feHWYoCWJ1Jl6DZkRD7\r\n"
                  "5UnEIqcOoXU=\r\n")


@pytest.mark.parametrize(("text", "encoded"), LZ_VECTORS)
def test_lz_string_matches_the_js_reference(text: str, encoded: str) -> None:
    assert compress_to_encoded_uri_component(text) == encoded
    assert decompress_from_encoded_uri_component(encoded) == text
    assert decompress_from_base64(compress_to_base64(text)) == text


def test_lz_string_of_the_vclaim_response_vector() -> None:
    assert compress_to_encoded_uri_component(PESERTA) == PESERTA_LZ


def test_lz_string_garbage_is_an_error_not_a_crash() -> None:
    with pytest.raises(LZStringError):
        decompress_from_encoded_uri_component("!!!!")


def test_vclaim_signature_published_example_and_vector() -> None:
    # BPJS's own example signs the message "aaa" with key "bbb"
    assert crypto.hmac_sha256_base64("bbb", "aaa") == "20BKS3PWnD3XU4JbSSZvVlGi2WWnDa8Sv9uHJ+wsELA="
    assert crypto.vclaim_signature("1234", "abcd", "1700000000") == "9UFN8VnB+TBdmya8WuKmSu4eiYxkHI1kfh8Wgb41EGc="


def test_vclaim_key_and_response_decryption_vector() -> None:
    key, iv = crypto.vclaim_key("1234", "abcd", "1700000000")
    assert key.hex() == "a0fd579c7b78afa98caaedc32c80013fbe27d74ffa75b219f848458614dac8b2"
    assert iv.hex() == "a0fd579c7b78afa98caaedc32c80013f"
    assert crypto.vclaim_decrypt("1234", "abcd", "1700000000", PESERTA_RESPONSE) == PESERTA
    assert crypto.vclaim_encrypt("1234", "abcd", "1700000000", PESERTA) == PESERTA_RESPONSE


def test_vclaim_decryption_with_another_timestamp_is_a_clear_error() -> None:
    with pytest.raises(crypto.CryptoError):
        crypto.vclaim_decrypt("1234", "abcd", "1700000001", PESERTA_RESPONSE)


def test_eklaim_encryption_vector() -> None:
    assert crypto.eklaim_encrypt(EKLAIM_KEY, EKLAIM_PLAIN, iv=EKLAIM_IV) == EKLAIM_PAYLOAD
    assert crypto.eklaim_decrypt(EKLAIM_KEY, EKLAIM_PAYLOAD) == EKLAIM_PLAIN


def test_eklaim_decrypt_tolerates_framing_newlines_and_unwrapped_bodies() -> None:
    framed = crypto.eklaim_frame(EKLAIM_PAYLOAD)
    assert framed.startswith("----BEGIN ENCRYPTED DATA----\r\n") and framed.endswith("----END ENCRYPTED DATA----\r\n")
    assert crypto.eklaim_decrypt(EKLAIM_KEY, framed) == EKLAIM_PLAIN
    assert crypto.eklaim_decrypt(EKLAIM_KEY, framed.replace("\r\n", "\n")) == EKLAIM_PLAIN
    assert crypto.eklaim_decrypt(EKLAIM_KEY, "".join(EKLAIM_PAYLOAD.split())) == EKLAIM_PLAIN


def test_eklaim_wrong_key_is_signature_not_match() -> None:
    with pytest.raises(crypto.CryptoError, match="SIGNATURE_NOT_MATCH"):
        crypto.eklaim_decrypt("ff" * 32, EKLAIM_PAYLOAD)
    with pytest.raises(crypto.CryptoError, match="64 hex"):
        crypto.eklaim_encrypt("abcd", b"{}")
