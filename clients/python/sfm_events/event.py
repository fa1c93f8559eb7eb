"""``memory.event`` v1 events, built and validated as the TypeScript consumers expect them."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from importlib.resources import files
from typing import Any, Mapping, Optional

import jsonschema

from .memory_id import legacy_memory_id

MAX_VERSION = 2**53 - 1
"""The schema's maximum: versions stay exact in JavaScript."""

MAX_DEPTH = 64
"""Deepest nesting accepted in a value (the consumers' decodeJson limit)."""


class EventError(ValueError):
    """An event that cannot be built: the message names the field's path (``value["tags"][2]``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


_DATE_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def _is_date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` (with a zone), checked here so that no optional jsonschema extra is needed."""
    if not isinstance(value, str):
        return True
    match = _DATE_TIME.match(value)
    if match is None:
        return False
    try:
        year, month, day, hour, minute = (int(g) for g in match.groups()[:5])
        datetime(year, month, day, hour, minute)  # a real calendar day
    except ValueError:
        return False
    return int(match.group(6)) <= 60  # a leap second is allowed


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(files("sfm_events").joinpath("memory.event.v1.json").read_text(encoding="utf-8"))
    checker = jsonschema.FormatChecker(["uuid"])
    checker.checks("date-time")(_is_date_time)
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


def _check_json(value: Any, path: str, depth: int = 0) -> Any:
    """A copy of ``value`` made of JSON types only (tuples become lists); raises EventError with the path otherwise."""
    if depth > MAX_DEPTH:
        raise EventError(path, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EventError(path, f"{value!r} is not JSON (NaN and Infinity have no JSON form)")
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise EventError(path, f"key {k!r} is a {type(k).__name__}, JSON object keys are strings")
            out[k] = _check_json(v, f"{path}[{json.dumps(k, ensure_ascii=False)}]", depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        return [_check_json(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise EventError(path, f"a {type(value).__name__} is not JSON (use str, int, float, bool, None, list or dict)")


def _timestamp(now_ns: int) -> str:
    seconds, ns = divmod(now_ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns // 1000:06d}Z"


def validate_event(event: Mapping[str, Any]) -> None:
    """Raises EventError (the first problem, with its path) unless ``event`` is a valid memory.event v1."""
    errors = sorted(_validator().iter_errors(event), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = "event" + "".join(f"[{json.dumps(p)}]" for p in first.absolute_path)
        raise EventError(path, first.message)


def build_event(
    namespace: str,
    coordinate: Any,
    value: Optional[Mapping[str, Any]] = None,
    op: str = "upsert",
    version: Optional[int] = None,
) -> dict:
    """A ``memory.event`` v1 for the legacy memory at ``coordinate`` in ``namespace``.

    ``event_id`` a fresh uuid4, ``id`` = ``legacy_memory_id(namespace, coordinate)``, ``version`` the clock in
    microseconds since the epoch unless given (the unit ``backfill --repair`` uses; nanoseconds would pass the
    schema's 2^53-1), ``timestamp`` RFC 3339 UTC (``…Z``). An upsert's ``type`` is ``value["memory_type"]``, its
    ``payload`` the value, ``importance`` copied when it is a number (as the backfill does). Raises EventError naming
    the path of the first field that is not JSON or not valid.
    """
    if op not in ("upsert", "delete"):
        raise EventError("op", f"must be 'upsert' or 'delete', got {op!r}")
    try:
        memory_id = legacy_memory_id(namespace, coordinate)
    except ValueError as error:
        raise EventError("coordinate", str(error)) from None
    now = time.time_ns()
    if version is None:
        version = now // 1000
    elif isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        raise EventError("version", f"must be an integer in [0, 2^53-1], got {version!r}")
    event: dict = {
        "event_id": str(uuid.uuid4()),
        "id": memory_id,
        "namespace": namespace,
        "op": op,
        "timestamp": _timestamp(now),
        "version": version,
    }
    if op == "upsert":
        if not isinstance(value, Mapping):
            raise EventError("value", f"an upsert needs a dict, got {type(value).__name__}")
        payload = _check_json(value, "value")
        memory_type = payload.get("memory_type")
        if not isinstance(memory_type, str) or memory_type == "":
            raise EventError('value["memory_type"]', "an upsert needs a non-empty string (the event's type)")
        event["type"] = memory_type
        importance = payload.get("importance")
        if isinstance(importance, (int, float)) and not isinstance(importance, bool):
            event["importance"] = importance
        event["payload"] = payload
    elif value is not None:
        raise EventError("value", "a delete carries no value")
    validate_event(event)
    return event


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN and Infinity refused."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
