"""`python -m vigil.peek TOPIC [N]`: print the last N committed records of a topic as JSON
(Avro values in Confluent wire format are decoded through the schema registry)."""

from __future__ import annotations

import json
import sys

from vigil import kafka_broker, kafka_io, serde
from vigil.registry.catalog import value_decoder
from vigil.registry.service import registry_url


def main(argv: list[str]) -> int:
    topic, n = argv[0], int(argv[1]) if len(argv) > 1 else 5
    bootstrap = kafka_broker.BrokerSettings().bootstrap
    ends = kafka_io.end_offsets(bootstrap, topic)
    start = {p: max(0, end - n) for p, end in ends.items()}
    decode_avro = value_decoder(registry_url())
    for message in list(kafka_io.read(bootstrap, topic, start))[-n:]:
        try:
            raw = message.value()
            value = decode_avro(raw) if raw and raw[:1] == b"\x00" else json.loads(raw)
            if isinstance(value, dict) and isinstance(value.get("payload"), str) and len(value["payload"]) > 80:
                value["payload"] = value["payload"][:80] + "..."
            print(json.dumps(value, ensure_ascii=True, default=str))
        except (TypeError, ValueError, serde.DecodeError):
            print(repr((message.value() or b"")[:200]))  # a tombstone prints b""
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
