"""The transactional outbox: the app inserts its event in the transaction of its own write; the relay
(``topologies/outbox-relay.ts``) publishes it after the commit and deletes the row once Kafka has it."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any, Mapping

from .event import encode_event, validate_event

DEFAULT_TABLE = "sfm_outbox"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def ddl() -> str:
    """The DDL of the outbox table (``outbox.sql``): the table, and a trigger that notifies ``sfm_outbox`` on commit."""
    return files("sfm_events").joinpath("outbox.sql").read_text(encoding="utf-8")


def insert(cursor: Any, event: Mapping[str, Any], table: str = DEFAULT_TABLE) -> None:
    """Adds ``event`` to the outbox through a DB-API cursor (psycopg 3 or psycopg2): call it in the transaction of
    the write it describes, so both commit or neither. The event is validated first (EventError)."""
    if not _IDENTIFIER.match(table):
        raise ValueError(f"table: {table!r} is not a plain identifier")
    validate_event(event)
    cursor.execute(
        f'INSERT INTO "{table}" (key, event) VALUES (%s, %s::jsonb)',
        (event["id"], encode_event(event).decode("utf-8")),
    )
