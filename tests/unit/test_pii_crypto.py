"""The pure cryptography of ADR 0016 (vigil/pii/crypto.py): sealed values open only with their
subject's key and context; a shredded key leaves them unreadable; tokens and ciphertexts carry
nothing of the identifier; lookups separate kinds and scopes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.pii import crypto

CONTEXT = ("t1", "user", "event-1")


@given(st.binary(max_size=2048), st.tuples(st.text(max_size=20), st.text(max_size=20), st.text(max_size=20)))
def test_a_sealed_value_opens_with_its_key_and_context_only(plaintext, context):
    subject, other = crypto.new_subject("user"), crypto.new_subject("user")
    blob = crypto.seal(subject.key, plaintext, context)
    assert crypto.unseal(subject.key, blob, context) == plaintext
    with pytest.raises(crypto.Unreadable):
        crypto.unseal(other.key, blob, context)            # the key shredded and replaced: unreadable
    with pytest.raises(crypto.Unreadable):
        crypto.unseal(subject.key, blob, context + ("x",))  # moved to another record or tenant


@given(st.binary(min_size=1, max_size=256), st.integers(min_value=0))
def test_any_altered_byte_is_detected(plaintext, where):
    subject = crypto.new_subject("user")
    blob = bytearray(crypto.seal(subject.key, plaintext, CONTEXT))
    blob[where % len(blob)] ^= 0x01
    with pytest.raises(crypto.Unreadable):
        crypto.unseal(subject.key, bytes(blob), CONTEXT)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_are_unreadable_not_a_crash(blob):
    with pytest.raises(crypto.Unreadable):
        crypto.unseal(crypto.new_subject("ip").key, blob, CONTEXT)


def test_the_same_value_sealed_twice_gives_unrelated_blobs():
    subject = crypto.new_subject("user")
    a, b = (crypto.seal(subject.key, b"48.8566,2.3522", CONTEXT) for _ in range(2))
    assert a != b and a[1:13] != b[1:13]


@given(st.text(min_size=1, max_size=64))
def test_tokens_are_random_and_hold_nothing_of_the_identifier(identifier):
    first, second = crypto.new_subject("user"), crypto.new_subject("user")
    assert first.token != second.token and first.key != second.key
    assert len(identifier) < 8 or identifier.lower() not in first.token.removeprefix("user_")


@given(st.sampled_from(crypto.KINDS), st.text(max_size=40), st.text(max_size=40), st.text(max_size=10))
def test_lookups_separate_values_kinds_scopes_and_peppers(kind, a, b, scope):
    pepper = crypto.new_pepper()
    assert (crypto.lookup(pepper, scope, kind, a) == crypto.lookup(pepper, scope, kind, b)) == (a == b)
    assert crypto.lookup(pepper, scope, kind, a) != crypto.lookup(crypto.new_pepper(), scope, kind, a)
    assert crypto.lookup(pepper, scope, kind, a) != crypto.lookup(pepper, scope + "x", kind, a)
    others = [k for k in crypto.KINDS if k != kind]
    assert all(crypto.lookup(pepper, scope, kind, a) != crypto.lookup(pepper, scope, k, a) for k in others)


def test_bad_kinds_and_peppers_are_refused():
    with pytest.raises(ValueError):
        crypto.lookup(crypto.new_pepper(), "t1", "email", "x")
    with pytest.raises(ValueError):
        crypto.lookup(b"short", "t1", "user", "x")
    with pytest.raises(ValueError):
        crypto.new_subject("email")


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(allow_nan=True, allow_infinity=True))
def test_coarse_cells_are_within_half_a_step_or_none(latitude, longitude):
    cell = crypto.coarse_cell(latitude, longitude)
    if cell is None:
        assert not (math.isfinite(latitude) and math.isfinite(longitude) and abs(latitude) <= 90 and abs(longitude) <= 180)
    else:
        assert abs(cell[0] - latitude) <= 0.05 + 1e-9 and abs(cell[1] - longitude) <= 0.05 + 1e-9
