"""Synthetic app traffic for a cutover rehearsal: the writes of the legacy SomaFractalMemory app, made the way the app
makes them with this package (``npm run traffic -- --via python`` runs it; docs/PRODUCERS.md).

Reads one write per line on stdin, as JSON (``npm run traffic`` plans them and sets the pace)::

    {"kind": "create"|"update"|"delete", "namespace": "ns", "coordinate": [1.0, 2.0],
     "value": {...} | null, "version": 1765000000000000}

and applies each to the legacy ``kv_store`` (key ``{ns}:{repr(coord)}:data``, computed here by
``legacy_memory_id``) with its event, by ``--pattern``:

- ``dual-write``: the ``kv_store`` write (autocommit, as the legacy store), then the event with ``MemoryEvents``
  (queued; flushed every second, and a failed delivery is counted, not fatal: parity then names the memory);
- ``outbox``: the ``kv_store`` write and ``outbox.insert`` in one transaction (``topologies/outbox-relay.ts``
  publishes);
- ``events``: the event only, as the app once its traffic has moved (RUNBOOK.md step 4: the legacy store is
  read-only for the app, the legacy mirror keeps it current).

A create also writes the ``…:meta`` row (``{"creation_timestamp": …}``), a delete removes ``…:data`` and ``…:meta``,
as the legacy app does. Prints one JSON object per line on stdout: ``{"progress": {...}}`` every second and
``{"summary": {...}}`` at the end of input. The legacy store is ``LEGACY_URL``; Kafka is ``KAFKA_BROKERS`` (and the
TLS/SASL variables), the topic ``SFM_TOPIC_PREFIX`` + ``memory.events``. Exit 2 for a configuration error (one line on
stderr), 1 for a failed write.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, Optional

from . import outbox
from .event import build_event
from .memory_id import legacy_memory_id
from .producer import ConfigError, MemoryEvents, PublishError

KINDS = ("create", "update", "delete")

UPSERT = (
    "INSERT INTO kv_store (key, value) VALUES (%s, %s::jsonb) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)
DELETE = "DELETE FROM kv_store WHERE key = ANY(%s)"


class Traffic:
    """Applies writes to the legacy store and publishes their events; counts what it did."""

    def __init__(self, conn: Any, pattern: str, events: Optional[MemoryEvents], outbox_table: str) -> None:
        self.conn = conn
        self.pattern = pattern
        self.events = events
        self.outbox_table = outbox_table
        self.counts: Dict[str, int] = {kind: 0 for kind in KINDS}
        self.publish_failures = 0
        self.started: Optional[float] = None
        self.last_done: Optional[float] = None

    def _legacy_write(self, cur: Any, kind: str, key: str, value: Optional[dict]) -> None:
        meta = key[: -len(":data")] + ":meta"
        if kind == "delete":
            cur.execute(DELETE, ([key, meta],))
            return
        cur.execute(UPSERT, (key, json.dumps(value)))
        if kind == "create":
            cur.execute(UPSERT, (meta, json.dumps({"creation_timestamp": time.time()})))

    def apply(self, write: dict) -> None:
        if self.started is None:
            self.started = time.monotonic()
        kind = write["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown write kind {kind!r}")
        namespace, coordinate = write["namespace"], tuple(float(c) for c in write["coordinate"])
        value = None if kind == "delete" else write["value"]
        op = "delete" if kind == "delete" else "upsert"
        event = build_event(namespace, coordinate, value, op, write["version"])
        key = legacy_memory_id(namespace, coordinate) + ":data"
        if self.pattern == "outbox":
            with self.conn.transaction(), self.conn.cursor() as cur:
                self._legacy_write(cur, kind, key, value)
                outbox.insert(cur, event, self.outbox_table)
        else:
            if self.pattern == "dual-write":
                with self.conn.cursor() as cur:  # autocommit: the legacy write is durable before the publish
                    self._legacy_write(cur, kind, key, value)
            assert self.events is not None
            try:
                self.events.publish(event, wait=False)
            except PublishError as error:  # failures of earlier events, reported as they are found
                self.publish_failures += len(error.failures)
        self.counts[kind] += 1
        self.last_done = time.monotonic()

    def flush(self) -> None:
        if self.events is None:
            return
        try:
            self.events.flush()
        except PublishError as error:
            self.publish_failures += len(error.failures)

    def figures(self) -> dict:
        seconds = 0.0 if self.started is None or self.last_done is None else self.last_done - self.started
        return {
            "writes": sum(self.counts.values()),
            **self.counts,
            "publish_failures": self.publish_failures,
            "seconds": round(seconds, 3),
        }


def _emit(kind: str, figures: dict) -> None:
    sys.stdout.write(json.dumps({kind: figures}) + "\n")
    sys.stdout.flush()


def _fail(message: str, code: int) -> "None":
    sys.stderr.write(f"sfm_events.traffic: {message}\n")
    sys.exit(code)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sfm_events.traffic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pattern", choices=("dual-write", "outbox", "events"), default="dual-write")
    parser.add_argument("--outbox-table", default=outbox.DEFAULT_TABLE)
    args = parser.parse_args(argv)
    url = os.environ.get("LEGACY_URL")
    if not url:
        _fail("LEGACY_URL is not set (the legacy PostgreSQL with kv_store)", 2)
    try:
        import psycopg
    except ImportError:
        _fail("psycopg is not installed: pip install 'psycopg[binary]' (npm run python-setup does)", 2)
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.Error as error:
        _fail(f"cannot connect to the legacy store: {str(error).strip().splitlines()[0]}", 2)
    events = None
    if args.pattern != "outbox":
        try:
            events = MemoryEvents()
        except ConfigError as error:
            _fail(str(error), 2)
    traffic = Traffic(conn, args.pattern, events, args.outbox_table)
    last_progress = time.monotonic()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            traffic.apply(json.loads(line))
            now = time.monotonic()
            if now - last_progress >= 1.0:
                traffic.flush()
                _emit("progress", traffic.figures())
                last_progress = now
        traffic.flush()
    except psycopg.Error as error:
        _fail(f"legacy write failed: {str(error).strip().splitlines()[0]}", 1)
    finally:
        conn.close()
    _emit("summary", traffic.figures())


if __name__ == "__main__":
    main()
