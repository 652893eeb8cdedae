"""`vigil schema ...` against the registry `vigil infra up` starts: what the platform team sees."""

from __future__ import annotations

import json
import uuid

from vigil import cli
from vigil.serde import load_schema


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["schema", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_register_check_list_and_config(schema_registry, tmp_path, capsys):
    subject = f"cli-{uuid.uuid4().hex[:8]}-value"
    url = ["--url", schema_registry]
    v1 = tmp_path / "v1.avsc"
    v1.write_text(json.dumps(load_schema("event-v1.avsc")))
    v2 = tmp_path / "v2.avsc"
    v2.write_text(json.dumps(load_schema("event-v2.avsc")))
    retyped = load_schema("event-v2.avsc")
    for field in retyped["fields"]:
        if field["name"] == "loyalty_tier":
            field["type"] = ["null", "int"]
    broken = tmp_path / "broken.avsc"
    broken.write_text(json.dumps(retyped))

    code, out, _ = _run(capsys, "check", str(v1), "--subject", subject, *url)
    assert code == 0 and "no versions yet" in out
    code, out, _ = _run(capsys, "register", str(v1), "--subject", subject, *url)
    assert code == 0 and "registered, id" in out
    code, out, _ = _run(capsys, "register", str(v2), "--subject", subject, *url)
    assert code == 0
    code, out, _ = _run(capsys, "check", str(broken), "--subject", subject, *url)
    assert code == 1 and "NOT compatible" in out and "loyalty_tier" in out
    code, _, err = _run(capsys, "register", str(broken), "--subject", subject, *url)
    assert code == 1 and "409" in err and "loyalty_tier" in err
    code, out, _ = _run(capsys, "list", "--subject", subject, *url)
    assert code == 0 and "version 1" in out and "version 2" in out and "version 3" not in out

    code, out, _ = _run(capsys, "config", "--subject", subject, "--set", "none", *url)
    assert code == 0 and "NONE" in out
    code, out, _ = _run(capsys, "register", str(broken), "--subject", subject, *url)
    assert code == 0  # NONE accepts anything


def test_bad_files_and_an_unreachable_registry_get_clear_errors(schema_registry, tmp_path, capsys):
    not_json = tmp_path / "x.avsc"
    not_json.write_text("{nope")
    code, _, err = _run(capsys, "register", str(not_json), "--subject", "s", "--url", schema_registry)
    assert code == 2 and "not JSON" in err
    code, _, err = _run(capsys, "register", str(tmp_path / "missing.avsc"), "--subject", "s", "--url", schema_registry)
    assert code == 2 and "cannot read" in err
    not_avro = tmp_path / "y.avsc"
    not_avro.write_text('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "strng"}]}')
    code, _, err = _run(capsys, "register", str(not_avro), "--subject", f"s-{uuid.uuid4().hex[:6]}",
                        "--url", schema_registry)
    assert code == 1 and "42201" in err
    code, _, err = _run(capsys, "list", "--url", "http://127.0.0.1:1")
    assert code == 3 and "unreachable" in err
