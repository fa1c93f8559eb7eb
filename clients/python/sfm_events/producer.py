"""``MemoryEvents``: publishes memory.event v1 to Kafka with confluent-kafka, idempotent, acks=all, keyed by id."""

from __future__ import annotations

import os
import time
from typing import Any, List, Mapping, Optional

from confluent_kafka import KafkaError, Producer

from .event import build_event, encode_event

DEFAULT_TOPIC = "memory.events"
MAX_FILE_BYTES = 1024 * 1024
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class ConfigError(ValueError):
    """A setting that is missing or wrong; the message names the variable and never a secret."""


class PublishError(RuntimeError):
    """Kafka did not take one or more events: ``failures`` lists ``(event id, event_id, error text)``."""

    def __init__(self, failures: List[tuple]) -> None:
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"event {first[1]} for memory {first[0]!r} was not published: {first[2]}{more}")
        self.failures = failures


def _value(env: Mapping[str, str], name: str) -> Optional[str]:
    v = env.get(name)
    return None if v is None or v.strip() == "" else v


def _flag(env: Mapping[str, str], name: str) -> Optional[bool]:
    v = _value(env, name)
    if v is None:
        return None
    if v.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if v.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {v!r}")


def _readable(name: str, path: str) -> str:
    try:
        if os.stat(path).st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{name}: {path} is over {MAX_FILE_BYTES} bytes")
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as error:
        raise ConfigError(f"{name}: cannot read {path} ({error.strerror})") from None


def kafka_config_from_env(env: Optional[Mapping[str, str]] = None) -> dict:
    """librdkafka settings for the variables the TypeScript clients read (docs/DEPLOY.md, Kafka TLS and SASL):
    ``KAFKA_SASL_MECHANISM`` (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``
    or ``KAFKA_SASL_PASSWORD_FILE``, ``KAFKA_TLS``, ``KAFKA_TLS_CA_FILE``, ``KAFKA_TLS_CERT_FILE`` +
    ``KAFKA_TLS_KEY_FILE``, ``KAFKA_TLS_REJECT_UNAUTHORIZED``. Raises ConfigError naming the variable."""
    env = os.environ if env is None else env
    config: dict = {}
    mechanism = _value(env, "KAFKA_SASL_MECHANISM")
    username = _value(env, "KAFKA_SASL_USERNAME")
    password = env.get("KAFKA_SASL_PASSWORD") or None
    password_file = _value(env, "KAFKA_SASL_PASSWORD_FILE")
    sasl = mechanism is not None
    if not sasl:
        stray = next((n for n, v in (("KAFKA_SASL_USERNAME", username), ("KAFKA_SASL_PASSWORD", password),
                                     ("KAFKA_SASL_PASSWORD_FILE", password_file)) if v), None)
        if stray:
            raise ConfigError(f"{stray} is set but KAFKA_SASL_MECHANISM is not: set it to {', '.join(MECHANISMS)}")
    else:
        mechanism = mechanism.strip().upper()
        if mechanism not in MECHANISMS:
            raise ConfigError(f"KAFKA_SASL_MECHANISM: {mechanism!r} is not supported (expected {', '.join(MECHANISMS)})")
        if username is None:
            raise ConfigError(f"KAFKA_SASL_USERNAME is not set (KAFKA_SASL_MECHANISM is {mechanism})")
        if password is not None and password_file is not None:
            raise ConfigError("KAFKA_SASL_PASSWORD and KAFKA_SASL_PASSWORD_FILE are both set: keep one")
        if password is None and password_file is None:
            raise ConfigError(f"KAFKA_SASL_PASSWORD (or KAFKA_SASL_PASSWORD_FILE) is not set (KAFKA_SASL_MECHANISM is {mechanism})")
        if password_file is not None:
            password = _readable("KAFKA_SASL_PASSWORD_FILE", password_file)
            password = password[:-2] if password.endswith("\r\n") else password[:-1] if password.endswith("\n") else password
            if password == "":
                raise ConfigError(f"KAFKA_SASL_PASSWORD_FILE: {password_file} is empty")
        config.update({"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password})

    ca, cert, key = (_value(env, n) for n in ("KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE"))
    named = next((n for n, v in (("KAFKA_TLS_CA_FILE", ca), ("KAFKA_TLS_CERT_FILE", cert),
                                 ("KAFKA_TLS_KEY_FILE", key)) if v), None)
    enabled = _flag(env, "KAFKA_TLS")
    verify = _flag(env, "KAFKA_TLS_REJECT_UNAUTHORIZED")
    if enabled is False and named:
        raise ConfigError(f"KAFKA_TLS is false but {named} is set: remove one of them")
    tls = enabled is True or (enabled is None and named is not None)
    if not tls:
        if verify is not None:
            raise ConfigError("KAFKA_TLS_REJECT_UNAUTHORIZED is set but TLS is off: set KAFKA_TLS=true")
    else:
        if (cert is None) != (key is None):
            missing, given = ("KAFKA_TLS_KEY_FILE", "KAFKA_TLS_CERT_FILE") if cert else ("KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE")
            raise ConfigError(f"{missing} is not set ({given} is): mutual TLS needs both")
        for name, path, marker in (("KAFKA_TLS_CA_FILE", ca, "-----BEGIN CERTIFICATE-----"),
                                   ("KAFKA_TLS_CERT_FILE", cert, "-----BEGIN CERTIFICATE-----"),
                                   ("KAFKA_TLS_KEY_FILE", key, "PRIVATE KEY-----")):
            if path is not None and marker not in _readable(name, path):
                raise ConfigError(f"{name}: {path} holds no PEM {'private key' if 'KEY' in name else 'certificate'}")
        if ca:
            config["ssl.ca.location"] = ca
        if cert and key:
            config["ssl.certificate.location"] = cert
            config["ssl.key.location"] = key
        if verify is False:
            config["enable.ssl.certificate.verification"] = False
    config["security.protocol"] = ("SASL_SSL" if tls else "SASL_PLAINTEXT") if sasl else ("SSL" if tls else "PLAINTEXT")
    return config


class _Pending:
    __slots__ = ("id", "event_id", "error", "done")

    def __init__(self, memory_id: str, event_id: str) -> None:
        self.id = memory_id
        self.event_id = event_id
        self.error: Optional[str] = None
        self.done = False


class MemoryEvents:
    """A producer of memory.event v1 to ``topic`` (default ``SFM_TOPIC_PREFIX`` + ``memory.events``), keyed by id.

    ``bootstrap_servers`` defaults to ``KAFKA_BROKERS``; TLS and SASL come from the same variables as the TypeScript
    clients (``kafka_config_from_env``). Extra librdkafka settings may be given with dots or underscores
    (``linger_ms=5``). Idempotence and ``acks=all`` cannot be turned off.

    ``upsert``/``delete`` wait for the broker's acknowledgement by default and raise PublishError when it does not
    come; with ``wait=False`` they return at once and ``flush()`` raises for every event that failed meanwhile.
    """

    def __init__(self, bootstrap_servers: Optional[str] = None, topic: Optional[str] = None,
                 env: Optional[Mapping[str, str]] = None, **confluent_config: Any) -> None:
        env = os.environ if env is None else env
        servers = bootstrap_servers or _value(env, "KAFKA_BROKERS")
        if not servers:
            raise ConfigError("no brokers: pass bootstrap_servers or set KAFKA_BROKERS (host:port,…)")
        extra = {k.replace("_", "."): v for k, v in confluent_config.items()}
        for name, required in (("enable.idempotence", True), ("acks", "all")):
            if name in extra and str(extra[name]).lower() not in (str(required).lower(), "-1"):
                raise ConfigError(f"{name} must stay {required!r}: without it a retried send can duplicate or lose events")
        config = {"bootstrap.servers": servers, "linger.ms": 5, "message.timeout.ms": 30000,
                  **kafka_config_from_env(env), **extra, "enable.idempotence": True, "acks": "all"}
        # As the TypeScript topologies name their topics: SFM_TOPIC_PREFIX + memory.events.
        self.topic = topic or env.get("SFM_TOPIC_PREFIX", "") + DEFAULT_TOPIC
        self._producer = Producer(config)
        self._failures: List[tuple] = []
        self._closed = False

    def _deliver(self, pending: _Pending):
        def callback(err: Optional[KafkaError], _msg: Any) -> None:
            pending.done = True
            if err is not None:
                pending.error = err.str() if hasattr(err, "str") else str(err)
                self._failures.append((pending.id, pending.event_id, pending.error))
        return callback

    def _raise_failures(self) -> None:
        if self._failures:
            failures, self._failures = self._failures, []
            raise PublishError(failures)

    def publish(self, event: Mapping[str, Any], wait: bool = True) -> dict:
        """Publishes an already built event (``build_event``) keyed by its id."""
        if self._closed:
            raise RuntimeError("MemoryEvents is closed")
        pending = _Pending(event["id"], event["event_id"])
        data = encode_event(event)
        while True:
            try:
                self._producer.produce(self.topic, key=event["id"].encode("utf-8"), value=data,
                                       on_delivery=self._deliver(pending))
                break
            except BufferError:
                self._producer.poll(0.05)  # the local queue is full: serve callbacks, then try again
        self._producer.poll(0)
        if wait:
            while not pending.done:
                self._producer.poll(0.05)
            if pending.error is not None:
                self._failures = [f for f in self._failures if f[1] != pending.event_id]
                raise PublishError([(pending.id, pending.event_id, pending.error)])
        self._raise_failures()
        return dict(event)

    def upsert(self, namespace: str, coordinate: Any, value: Mapping[str, Any], version: Optional[int] = None,
               wait: bool = True) -> dict:
        """Publishes an upsert of the memory at ``coordinate``; returns the event."""
        return self.publish(build_event(namespace, coordinate, value, "upsert", version), wait)

    def delete(self, namespace: str, coordinate: Any, version: Optional[int] = None, wait: bool = True) -> dict:
        """Publishes a delete of the memory at ``coordinate``; returns the event."""
        return self.publish(build_event(namespace, coordinate, None, "delete", version), wait)

    def flush(self, timeout: float = 60.0) -> None:
        """Waits for every queued event; raises PublishError for those that failed or are still queued."""
        deadline = time.monotonic() + timeout
        remaining = self._producer.flush(timeout)
        while remaining > 0 and time.monotonic() < deadline:
            remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
        self._raise_failures()
        if remaining > 0:
            raise PublishError([("?", "?", f"{remaining} events still queued after {timeout} s")])

    def close(self, timeout: float = 60.0) -> None:
        """Flushes (raising like ``flush``) and releases the producer."""
        if self._closed:
            return
        try:
            self.flush(timeout)
        finally:
            self._closed = True

    def __enter__(self) -> "MemoryEvents":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
