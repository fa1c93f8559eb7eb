"""Dual-write: the legacy write to kv_store, then the event with MemoryEvents.

Simple, and it loses the event when the process dies between the two (or the publish fails for longer than the
producer retries): `npm run parity` then names the memory and `npm run backfill -- --repair REPORT` re-emits it.

    DATABASE_URL=postgres://… KAFKA_BROKERS=host:9092 python dual_write.py NAMESPACE "1,2,3" "some text"
"""

import json
import os
import sys

import psycopg

from sfm_events import MemoryEvents, legacy_memory_id


def remember(conn, events, namespace, coordinate, text):
    value = {"text": text, "memory_type": "episodic", "coordinate": list(coordinate)}
    key = legacy_memory_id(namespace, coordinate) + ":data"  # the legacy key: f"{ns}:{repr(coord)}:data"
    with conn.cursor() as cur:  # 1. the legacy write, autocommit as the legacy store does
        cur.execute(
            "INSERT INTO kv_store (key, value) VALUES (%s, %s::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, json.dumps(value)),
        )
    # 2. the event; a process dying here loses it. upsert waits for Kafka and raises PublishError when it fails.
    return events.upsert(namespace, coordinate, value)


def main():
    namespace, coordinate, text = sys.argv[1], tuple(float(c) for c in sys.argv[2].split(",")), sys.argv[3]
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn, MemoryEvents() as events:
        event = remember(conn, events, namespace, coordinate, text)
        print(event["id"])


if __name__ == "__main__":
    main()
