"""The pure cryptography of ADR 0016: no I/O, no state.

- lookup(pepper, scope, kind, value): where a subject's row is found in the vault. A keyed hash, so
  the vault never stores the identifier, and without the pepper a row cannot be found from it.
- new_subject(): a subject's random key (AES-256) and random token. The token has no relation
  to the identifier: once the vault row is deleted, nothing maps the person to it again.
- seal / unseal: AES-256-GCM with a random nonce, bound to its context (tenant, kind, event id)
  by the associated data. The same value sealed twice gives two unrelated blobs, so ciphertexts
  do not link records either.
- coarse_cell: a location rounded to a grid cell, what the travel pattern needs in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KINDS = ("user", "device", "ip", "card")
PEPPER_BYTES = 32
KEY_BYTES = 32
TOKEN_BYTES = 16
NONCE_BYTES = 12
SEAL_VERSION = b"\x01"


class Unreadable(ValueError):
    """A sealed value that cannot be opened: wrong key (e.g. shredded), context or bytes."""


@dataclass(frozen=True)
class Subject:
    key: bytes      # AES-256 key of the subject's sealed values
    token: str      # what replaces the identifier downstream


def new_pepper() -> bytes:
    return os.urandom(PEPPER_BYTES)


def lookup(pepper: bytes, scope: str, kind: str, value: str) -> bytes:
    """The vault's index of (scope, kind, value): a tenant's user and another tenant's user of
    the same id are two subjects, and the vault does not show that the ids are equal.

    >>> p = bytes(32)
    >>> lookup(p, "t1", "user", "u1") == lookup(p, "t1", "user", "u1") != lookup(p, "t1", "device", "u1")
    True
    >>> lookup(p, "t1", "user", "u1") != lookup(p, "t2", "user", "u1")
    True
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    if len(pepper) != PEPPER_BYTES:
        raise ValueError("a pepper has 32 bytes")
    return hmac.new(pepper, _aad((scope, kind, value)), hashlib.sha256).digest()


def new_subject(kind: str) -> Subject:
    """A fresh subject: random key and token. The token names its kind, for people reading logs.

    >>> s = new_subject("card"); s.token.startswith("card_") and len(s.key) == 32
    True
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    token = base64.b32encode(os.urandom(TOKEN_BYTES)).decode().rstrip("=").lower()
    return Subject(os.urandom(KEY_BYTES), f"{kind}_{token}")


def _aad(context: tuple[str, ...]) -> bytes:
    # Length-prefixed, so no two different contexts give the same bytes ("ab", "c" vs "a", "bc").
    parts = [part.encode("utf-8", "surrogatepass") for part in context]
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def seal(key: bytes, plaintext: bytes, context: tuple[str, ...]) -> bytes:
    """version (1) + nonce (12) + AES-GCM ciphertext and tag, bound to `context`."""
    nonce = os.urandom(NONCE_BYTES)
    return SEAL_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(context))


def unseal(key: bytes, blob: bytes, context: tuple[str, ...]) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != SEAL_VERSION:
        raise Unreadable("not a sealed value")
    try:
        return AESGCM(key).decrypt(blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:], _aad(context))
    except (InvalidTag, ValueError):
        raise Unreadable("wrong key or context, or altered bytes") from None


def coarse_cell(latitude: float, longitude: float, step_degrees: float = 0.1) -> tuple[float, float] | None:
    """The centre of the grid cell holding a location (0.1 degree: about 11 km north-south).
    None for a location that is not one.

    >>> coarse_cell(48.8566, 2.3522)
    (48.85, 2.35)
    >>> coarse_cell(91.0, 0.0) is None and coarse_cell(float("nan"), 0.0) is None
    True
    """
    if not (isinstance(latitude, (int, float)) and isinstance(longitude, (int, float))):
        return None
    if not (math.isfinite(latitude) and math.isfinite(longitude)) or abs(latitude) > 90 or abs(longitude) > 180:
        return None
    def centre(v: float) -> float:
        return round((math.floor(v / step_degrees) + 0.5) * step_degrees, 6)
    return centre(latitude), centre(longitude)
