import json
import math
import pathlib
import re
import time
import uuid

import pytest

from sfm_events import EventError, build_event, encode_event, validate_event

REPO_SCHEMA = pathlib.Path(__file__).resolve().parents[3] / "schemas" / "memory.event" / "v1.json"
VALUE = {"text": "Ada said the cache is cold", "memory_type": "episodic", "importance": 0.7, "coordinate": [1.0, 2.0]}


def test_upsert_fields():
    before = time.time_ns() // 1000
    event = build_event("default", [1, 2], VALUE)
    after = time.time_ns() // 1000
    assert uuid.UUID(event["event_id"]).version == 4
    assert event["id"] == "default:(1.0, 2.0)"
    assert event["namespace"] == "default"
    assert event["op"] == "upsert"
    assert event["type"] == "episodic"
    assert event["importance"] == 0.7
    assert event["payload"] == VALUE
    assert before <= event["version"] <= after
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["timestamp"])
    assert build_event("default", [1, 2], VALUE)["event_id"] != event["event_id"]


def test_given_version_and_delete():
    event = build_event("ns", [0.5], None, op="delete", version=42)
    assert event["op"] == "delete" and event["version"] == 42
    assert "payload" not in event and "type" not in event
    with pytest.raises(EventError, match="^value: a delete carries no value"):
        build_event("ns", [0.5], VALUE, op="delete")
    for bad in (-1, 2**53, 1.5, True):
        with pytest.raises(EventError, match=r"^version:"):
            build_event("ns", [0.5], VALUE, version=bad)


@pytest.mark.parametrize(
    "value, path, problem",
    [
        ({**VALUE, "blob": b"\x00\x01"}, 'value["blob"]', "a bytes is not JSON"),
        ({**VALUE, "tags": {"a", "b"}}, 'value["tags"]', "a set is not JSON"),
        ({**VALUE, "meta": {"scores": [1.0, math.nan]}}, 'value["meta"]["scores"][1]', "nan is not JSON"),
        ({**VALUE, "meta": {"x": math.inf}}, 'value["meta"]["x"]', "inf is not JSON"),
        ({**VALUE, "links": [{"to": object()}]}, 'value["links"][0]["to"]', "a object is not JSON"),
        ({**VALUE, "meta": {1: "x"}}, 'value["meta"]', "key 1 is a int"),
        ({"text": "no type"}, 'value["memory_type"]', "an upsert needs a non-empty string"),
    ],
)
def test_not_json_raises_with_the_path(value, path, problem):
    with pytest.raises(EventError) as caught:
        build_event("ns", [1.0], value)
    assert caught.value.path == path
    assert problem in str(caught.value)


def test_too_deep():
    value = {"memory_type": "semantic"}
    node = value
    for _ in range(70):
        node["n"] = {}
        node = node["n"]
    with pytest.raises(EventError, match="nested deeper than 64"):
        build_event("ns", [1.0], value)


def test_tuples_become_lists_and_output_is_json():
    event = build_event("ns", (1.0,), {**VALUE, "pair": (1, 2)})
    assert event["payload"]["pair"] == [1, 2]
    assert json.loads(encode_event(event)) == event


def test_the_schema_decides():
    event = build_event("ns", [1.0], VALUE)
    validate_event(event)
    with pytest.raises(EventError, match=r'^event\["event_id"\]: .* is not a .uuid.'):
        validate_event({**event, "event_id": "not-a-uuid"})
    with pytest.raises(EventError, match=r"^event: 'timestamp' is a required property"):
        validate_event({k: v for k, v in event.items() if k != "timestamp"})
    with pytest.raises(EventError, match=r"^event: 'payload' is a required property"):
        validate_event({k: v for k, v in event.items() if k != "payload"})
    with pytest.raises(EventError, match=r'^event\["timestamp"\]'):
        validate_event({**event, "timestamp": "yesterday"})


def test_packaged_schema_is_the_repository_schema():
    if not REPO_SCHEMA.exists():
        pytest.skip(f"not in the repository checkout: {REPO_SCHEMA.name} absent")
    from importlib.resources import files

    packaged = files("sfm_events").joinpath("memory.event.v1.json").read_text(encoding="utf-8")
    assert json.loads(packaged) == json.loads(REPO_SCHEMA.read_text(encoding="utf-8")), (
        "clients/python/sfm_events/memory.event.v1.json differs from schemas/memory.event/v1.json: copy it over"
    )


@pytest.mark.parametrize("timestamp", ["2026-02-30T00:00:00Z", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00",
                                       "2026-01-01T25:00:00Z", "2026-01-01T00:00:61Z"])
def test_timestamps_the_consumer_refuses(timestamp):
    event = build_event("ns", [1.0], VALUE)
    with pytest.raises(EventError, match=r'^event\["timestamp"\]'):
        validate_event({**event, "timestamp": timestamp})
    validate_event({**event, "timestamp": "2026-01-01T00:00:00.5+02:00"})
