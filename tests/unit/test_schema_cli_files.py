"""`vigil schema check|register FILE` on whatever the file holds: a bad file always ends in exit 2
with one line on stderr (no traceback), before the registry is ever asked.

The parse step (`parse_schema`) is pure, so hypothesis feeds it arbitrary bytes; the same bytes
also go through a real file and the real command line.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil import cli
from vigil.schema_cli import MAX_SCHEMA_BYTES, BadFile, parse_schema, read_schema_file

NOBODY = "http://127.0.0.1:1"  # a file that parses would reach this and exit 3, never 2
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
RECORD = b'{"type": "record", "name": "R", "fields": [{"name": "a", "type": "string"}]}'

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["type", "name", "x"]), inner,
                                                                 max_size=3),
    max_leaves=12)


def one_line(message: str) -> bool:
    return bool(message) and "\n" not in message and "\r" not in message


def avro_shaped(value) -> bool:
    """The rule parse_schema applies, restated: a type name, an object with a "type", a union."""
    def one(v):
        return isinstance(v, str) and v != "" or isinstance(v, dict) and "type" in v
    return one(value) or isinstance(value, list) and bool(value) and all(map(one, value))


def schema_command(capsys, path: str, action: str = "register") -> tuple[int, str, str]:
    code = cli.main(["schema", action, path, "--subject", "s-value", "--url", NOBODY])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@FUZZ
@given(st.binary(max_size=2048) | st.sampled_from([RECORD, b"\xef\xbb\xbf" + RECORD, b"[" * 50_000,
                                                   b'"\\ud800"', b"1" * 5000, b"\x00" * 10]))
def test_any_bytes_are_a_schema_text_or_a_one_line_bad_file(data):
    try:
        text = parse_schema(data, "x.avsc")
    except BadFile as error:
        assert one_line(str(error)) and str(error).startswith("x.avsc "), str(error)
    else:
        assert avro_shaped(json.loads(text))


@FUZZ
@given(json_values)
def test_json_is_accepted_exactly_when_it_is_shaped_like_a_schema(value):
    data = json.dumps(value).encode()
    try:
        parse_schema(data)
        accepted = True
    except BadFile as error:
        assert one_line(str(error))
        accepted = False
    assert accepted == avro_shaped(value)


@FUZZ
@given(data=st.binary(max_size=512), action=st.sampled_from(["check", "register"]))
def test_any_file_content_through_the_command_exits_2_with_one_line_or_reaches_the_registry(
        tmp_path, capsys, data, action):
    path = tmp_path / "fuzz.avsc"
    path.write_bytes(data)
    try:
        parse_schema(data)
        parses = True
    except BadFile:
        parses = False
    code, out, err = schema_command(capsys, str(path), action)
    if parses:
        assert code == 3 and "unreachable" in err  # it got as far as asking the registry
    else:
        assert code == 2 and out == "" and one_line(err.rstrip("\n")) and err.startswith("vigil schema: ")
        assert "Traceback" not in err


def _sparse(path, size: int):
    with open(path, "wb") as file:
        file.truncate(size)  # a hole: no disk used, but reading it all would take long
    return path


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "missing.avsc", "cannot read"),
    (lambda d: d, "cannot read"),  # a directory
    (lambda d: _write(d / "garbage.avsc", os.urandom(4096) + b"\xff"), "not UTF-8"),
    (lambda d: _write(d / "latin1.avsc", '{"type": "string", "doc": "café"}'.encode("latin-1")), "not UTF-8"),
    (lambda d: _write(d / "empty.avsc", b""), "not JSON"),
    (lambda d: _write(d / "broken.avsc", b'{"type": "record",'), "not JSON"),
    (lambda d: _write(d / "deep.avsc", b"[" * 100_000), "not JSON"),
    (lambda d: _write(d / "number.avsc", b"42"), "not an Avro schema"),
    (lambda d: _write(d / "no-type.avsc", b'{"name": "R", "fields": []}'), "not an Avro schema"),
    (lambda d: _write(d / "ints.avsc", b"[1, 2, 3]"), "not an Avro schema"),
    (lambda d: _sparse(d / "huge.avsc", 2 * 1024**3), "larger than"),
    (lambda d: _write(d / "just-over.avsc", b" " * MAX_SCHEMA_BYTES + b'"string"'), "larger than"),
    (lambda d: _write(d / "new\nline.avsc", b"nope"), "not JSON"),
])
def test_bad_files_exit_2_with_one_clear_line(tmp_path, capsys, make, says):
    path = make(tmp_path)
    for action in ("check", "register"):
        code, out, err = schema_command(capsys, str(path), action)
        assert code == 2 and out == "", err
        assert err.startswith("vigil schema: ") and err.count("\n") == 1 and says in err, err


def test_dev_zero_is_not_read_for_ever(capsys):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    code, _, err = schema_command(capsys, "/dev/zero")
    assert code == 2 and "larger than" in err


def test_a_good_file_and_a_bom_are_read_as_the_schema_text(tmp_path):
    assert read_schema_file(str(_write(tmp_path / "r.avsc", RECORD))) == RECORD.decode()
    assert read_schema_file(str(_write(tmp_path / "bom.avsc", b"\xef\xbb\xbf" + RECORD))) == RECORD.decode()
    assert parse_schema(b'["null", "string"]') == '["null", "string"]'  # a union is a schema too


def _write(path, data: bytes):
    path.write_bytes(data)
    return path
