"""Transactional outbox: kv_store and the outbox row in one transaction; topologies/outbox-relay.ts publishes.

Nothing is lost between the write and the event: both commit or neither does, and the relay deletes a row only
after Kafka acknowledged its event.

    DATABASE_URL=postgres://… python outbox_write.py NAMESPACE "1,2,3" "some text"
    SFM_OUTBOX_URL=$DATABASE_URL npm start -- topologies/outbox-relay.ts      # the relay, in the repository

The table: `psql -f sfm_events/outbox.sql` (or `outbox.ddl()`, as below), once.
"""

import json
import os
import sys

import psycopg

from sfm_events import build_event, legacy_memory_id, outbox


def remember(conn, namespace, coordinate, text):
    value = {"text": text, "memory_type": "episodic", "coordinate": list(coordinate)}
    event = build_event(namespace, coordinate, value)  # raises EventError, naming the field, for non-JSON values
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "INSERT INTO kv_store (key, value) VALUES (%s, %s::jsonb) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (legacy_memory_id(namespace, coordinate) + ":data", json.dumps(value)),
        )
        outbox.insert(cur, event)
    return event


def main():
    namespace, coordinate, text = sys.argv[1], tuple(float(c) for c in sys.argv[2].split(",")), sys.argv[3]
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(outbox.ddl())
            cur.execute("CREATE TABLE IF NOT EXISTS kv_store (key text PRIMARY KEY, value jsonb NOT NULL)")
        print(remember(conn, namespace, coordinate, text)["id"])


if __name__ == "__main__":
    main()
