"""The shortcuts that make ingest validation cheaper decide exactly what the plain checks decide
(issue 11, ADR 0008): the IPv4 regex, the one-call identifier check, the generated Avro decoder
(tests/unit/test_serde.py compares it with fastavro), and the batched record counter."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.scenarios import NOW_MS, event, wire
from udfs import validation
from udfs.validation import ValidationRules, validate
from vigil import avro_codec

TRICKY_IPS = ["0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3.04", "00.1.1.1", "256.1.1.1",
              "1.2.3", "1.2.3.4.5", "1..2.3", "\u0661.2.3.4", "1.2.3.4\n", " 1.2.3.4", "1.2.3.4 ",
              "+1.2.3.4", "1.2.3.-4", "1.2.3.4/32", "::1", "2001:db8::1", "::ffff:1.2.3.4", ""]


def _ipaddress_accepts(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def test_the_ipv4_regex_accepts_only_what_ipaddress_accepts():
    for text in TRICKY_IPS:
        if validation._IPV4.fullmatch(text):
            assert _ipaddress_accepts(text), text
    assert all(validation._IPV4.fullmatch(t) for t in ["0.0.0.0", "255.255.255.255", "1.2.3.4", "10.0.10.100"])


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(octets=st.lists(st.text(alphabet="0123456789", min_size=0, max_size=4), min_size=1, max_size=5))
def test_dotted_digits_get_the_same_answer_from_the_regex_and_ipaddress(octets):
    text = ".".join(octets)
    assert bool(validation._IPV4.fullmatch(text)) == _ipaddress_accepts(text), text


def test_an_identifier_holding_the_separator_is_still_invalid():
    record = event(session_id="s1\x00s2")
    verdict = validate(wire(record)[1], wire(record)[0], NOW_MS, ValidationRules())
    assert verdict.reason == "invalid_identifier" and "session_id" in verdict.detail


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(values=st.lists(st.none() | st.text(max_size=12) | st.sampled_from(["e1", "t-1.x@y", "a" * 128, "a" * 129]),
                       min_size=8, max_size=8))
def test_the_one_call_identifier_check_agrees_with_the_field_by_field_one(values):
    present = [v for v in values if v is not None]
    joined = validation._SEPARATOR.join(present)
    at_once = bool(validation._IDENTIFIERS.fullmatch(joined)) and joined.count(validation._SEPARATOR) == len(present) - 1
    one_by_one = all(validation._IDENTIFIER.fullmatch(v) for v in present)
    assert at_once == one_by_one or not present


def test_the_generated_decoder_reads_non_minimal_varints_and_refuses_bad_branches():
    decode = avro_codec.compile_decoder({"type": "record", "name": "R", "fields": [
        {"name": "a", "type": ["null", "string"]}, {"name": "b", "type": ["null", "long"]}]})
    assert decode(b"\x80\x00\x02\x01") == {"a": None, "b": -1}       # branch 0 written in two bytes
    assert decode(b"\x82\x00\x04hi\x00") == {"a": "hi", "b": None}    # branch 1 written in two bytes
    for corrupt in (b"\x04\x00", b"\x02\x08hi", b"\x00\x00\x00"):     # branch 2; length past the end; trailing
        try:
            decode(corrupt)
        except (ValueError, IndexError):
            continue
        raise AssertionError(corrupt)
