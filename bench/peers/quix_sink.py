"""
The Quix Streams side of `npm run bench -- peers` (bench/peers.ts): memory.event JSON from a Kafka topic into a
PostgreSQL table with Quix Streams' own PostgreSQLSink, upserting by `id` (`upsert_on_primary_key=True`).

Everything else is Quix Streams' defaults: the JSON deserializer, a 5 s checkpoint (the sink writes one batch per
checkpoint, deduplicated by id, last read wins), errors raised (a record it cannot decode or map stops the app).
It has no version fence, no event-id dedupe and no delete: a delete event is written as a row with `deleted = true`
(the soft delete the harness reads), and whatever arrives last for an id wins.

Configuration comes from the environment (the harness sets it): SFM_PEERS_BROKERS, SFM_PEERS_TOPIC,
SFM_PEERS_GROUP, SFM_PEERS_TABLE (schema.table, created by the harness), SFM_PEERS_APP (application_name), and
PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD. Runs until SIGTERM.
"""

import os
import sys

from quixstreams import Application
from quixstreams.sinks.community.postgresql import PostgreSQLSink


FIRST = [True]


def to_row(event):
    """One memory.event → one row; a missing `id` raises (the app stops, as Quix Streams does by default)."""
    if FIRST[0]:
        # The harness starts this side's CPU window here: its work before the first checkpoint writes nothing yet.
        FIRST[0] = False
        print("sfm-peers: first message", file=sys.stderr, flush=True)
    deleted = event.get("op") == "delete"
    version = event.get("version")
    return {
        "id": event["id"],
        "namespace": event.get("namespace", ""),
        "type": event.get("type", ""),
        # The sink takes its column list from the first row of a batch and drops None values: every column is
        # always set, so no batch loses a column.
        "version": -1 if version is None else version,
        "event_id": event.get("event_id", ""),
        "event_ts": event.get("timestamp", ""),
        "deleted": deleted,
        "payload": {} if deleted else event.get("payload", {}),
    }


def main():
    env = os.environ
    schema, _, table = env["SFM_PEERS_TABLE"].rpartition(".")
    app = Application(
        broker_address=env["SFM_PEERS_BROKERS"],
        consumer_group=env["SFM_PEERS_GROUP"],
        auto_offset_reset="earliest",
    )
    topic = app.topic(env["SFM_PEERS_TOPIC"], value_deserializer="json")
    sink = PostgreSQLSink(
        host=env["PGHOST"],
        port=int(env["PGPORT"]),
        dbname=env["PGDATABASE"],
        user=env["PGUSER"],
        password=env["PGPASSWORD"],
        table_name=table,
        schema_name=schema or "public",
        primary_key_columns=["id"],
        upsert_on_primary_key=True,
        include_metadata=False,
        application_name=env.get("SFM_PEERS_APP", "sfm-bench-quix"),
    )
    sdf = app.dataframe(topic)
    sdf = sdf.apply(to_row)
    sdf.sink(sink)
    app.run()


if __name__ == "__main__":
    main()
