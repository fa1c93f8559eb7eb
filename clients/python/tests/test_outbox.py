import json
import select
import uuid

import pytest

from sfm_events import EventError, build_event, outbox

VALUE = {"text": "hello", "memory_type": "semantic"}


@pytest.fixture(params=["psycopg", "psycopg2"])
def connect(request, database_url):
    schema = f"pytest_{uuid.uuid4().hex[:12]}"
    if request.param == "psycopg":
        import psycopg

        def open_connection():
            conn = psycopg.connect(database_url, options=f"-c search_path={schema}")
            return conn
    else:
        import psycopg2

        def open_connection():
            return psycopg2.connect(database_url, options=f"-c search_path={schema}")

    admin = open_connection()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
        cur.execute(outbox.ddl())
    yield open_connection
    with admin.cursor() as cur:
        cur.execute(f'DROP SCHEMA "{schema}" CASCADE')
    admin.close()


def rows(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT id, key, event FROM sfm_outbox ORDER BY id")
        return cur.fetchall()


def test_insert_commits_and_rolls_back_with_the_write(connect):
    app = connect()
    reader = connect()
    reader.autocommit = True
    with reader.cursor() as cur:
        cur.execute("LISTEN sfm_outbox")
    kept = build_event("ns", [1.0], VALUE)
    with app.cursor() as cur:
        cur.execute("CREATE TABLE kv_store (key text PRIMARY KEY, value jsonb NOT NULL)")
        cur.execute("INSERT INTO kv_store VALUES (%s, %s::jsonb)", (kept["id"] + ":data", json.dumps(VALUE)))
        outbox.insert(cur, kept)
    app.commit()
    with app.cursor() as cur:
        outbox.insert(cur, build_event("ns", [2.0], VALUE))
    app.rollback()
    stored = rows(reader)
    assert [(key, event) for _, key, event in stored] == [(kept["id"], kept)]
    # The trigger notified the relay's channel at commit.
    notified = False
    if hasattr(reader, "notifies") and callable(reader.notifies):  # psycopg 3
        for note in reader.notifies(timeout=5, stop_after=1):
            notified = note.channel == "sfm_outbox"
    else:  # psycopg2
        select.select([reader], [], [], 5)
        reader.poll()
        notified = any(n.channel == "sfm_outbox" for n in reader.notifies)
    assert notified
    app.close()
    reader.close()


def test_insert_validates(connect):
    app = connect()
    event = build_event("ns", [1.0], VALUE)
    with app.cursor() as cur:
        with pytest.raises(EventError, match="'payload' is a required property"):
            outbox.insert(cur, {k: v for k, v in event.items() if k != "payload"})
        with pytest.raises(ValueError, match="not a plain identifier"):
            outbox.insert(cur, event, table='x"; DROP TABLE kv_store; --')
    app.rollback()
    assert rows(app) == []
    app.close()
