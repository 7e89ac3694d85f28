"""OpenSSH public keys: parsed from the wire format and checked, never trusted as text.

A key line is `<type> <base64 blob> [comment]`. The blob repeats the type and carries the key
material (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709); it is decoded field by field so a truncated,
padded or mislabelled key is refused, and RSA keys below 2048 bits are refused outright.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

MIN_RSA_BITS = 2048
MAX_KEY_LINE = 16 * 1024
_ECDSA_POINT_BYTES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}
ALLOWED_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    *(f"ecdsa-sha2-{curve}" for curve in _ECDSA_POINT_BYTES),
)


class InvalidKeyError(ValueError):
    """The key cannot be used; the message says why, in GitLab's words where it has some."""


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: bytes
    comment: str

    @property
    def fingerprint_sha256(self) -> str:
        return fingerprint_of(self.blob)

    @property
    def line(self) -> str:
        encoded = base64.b64encode(self.blob).decode()
        return f"{self.type} {encoded} {self.comment}".rstrip()


def fingerprint_of(blob: bytes) -> str:
    """OpenSSH's form: `SHA256:` and unpadded base64 of the blob's digest."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def decode_blob(encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidKeyError("is invalid: the key data is not base64") from exc


def parse_public_key(text: str) -> PublicKey:
    line = text.strip()
    if not line or len(line) > MAX_KEY_LINE or "\n" in line or "\r" in line:
        raise InvalidKeyError("is invalid: expected exactly one line '<type> <base64> [comment]'")
    key_type, _, rest = line.partition(" ")
    encoded, _, comment = rest.strip().partition(" ")
    if key_type not in ALLOWED_TYPES:
        raise InvalidKeyError(f"type is forbidden. Must be one of: {', '.join(ALLOWED_TYPES)}")
    blob = decode_blob(encoded)
    _check_blob(key_type, blob)
    return PublicKey(type=key_type, blob=blob, comment=comment.strip())


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._offset = 0

    def string(self) -> bytes:
        if self._offset + 4 > len(self._data):
            raise InvalidKeyError("is invalid: the key data is truncated")
        (length,) = struct.unpack_from(">I", self._data, self._offset)
        start = self._offset + 4
        if start + length > len(self._data):
            raise InvalidKeyError("is invalid: the key data is truncated")
        self._offset = start + length
        return self._data[start : self._offset]

    def mpint(self) -> int:
        raw = self.string()
        if raw and raw[0] & 0x80:
            raise InvalidKeyError("is invalid: negative number in the key data")
        return int.from_bytes(raw, "big")

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise InvalidKeyError("is invalid: unexpected data after the key")


def _check_blob(key_type: str, blob: bytes) -> None:
    reader = _Reader(blob)
    if reader.string() != key_type.encode():
        raise InvalidKeyError("is invalid: the key data does not match the key type")
    if key_type == "ssh-ed25519":
        if len(reader.string()) != 32:
            raise InvalidKeyError("is invalid: an ed25519 key is 32 bytes")
    elif key_type == "ssh-rsa":
        exponent, modulus = reader.mpint(), reader.mpint()
        if exponent < 3 or exponent % 2 == 0:
            raise InvalidKeyError("is invalid: bad RSA exponent")
        if modulus.bit_length() < MIN_RSA_BITS:
            raise InvalidKeyError(f"RSA key must be at least {MIN_RSA_BITS} bits")
    else:
        curve = key_type.removeprefix("ecdsa-sha2-")
        if reader.string() != curve.encode():
            raise InvalidKeyError("is invalid: the curve does not match the key type")
        point = reader.string()
        if len(point) != _ECDSA_POINT_BYTES[curve] or point[0] != 0x04:
            raise InvalidKeyError("is invalid: not an uncompressed point on the curve")
    reader.finish()
