import json
import uuid

import pytest
from confluent_kafka import Consumer

from sfm_events import ConfigError, MemoryEvents, PublishError, kafka_config_from_env

VALUE = {"text": "hello", "memory_type": "semantic"}


def consume(brokers, topic, count):
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"pytest-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out = []
    try:
        for _ in range(300):
            message = consumer.poll(0.2)
            if message is None or message.error():
                if len(out) >= count:
                    break
                continue
            out.append(message)
    finally:
        consumer.close()
    return out


def test_upsert_and_delete_keyed_by_id_in_order(brokers, topic):
    with MemoryEvents(brokers, topic=topic) as events:
        sent = [events.upsert("ns", [1.0, float(i % 3)], {**VALUE, "n": i}, wait=False) for i in range(30)]
        sent.append(events.delete("ns", [1.0, 0.0]))
        events.flush()
    received = consume(brokers, topic, len(sent))
    assert len(received) == len(sent)
    for message in received:
        assert message.key().decode() == json.loads(message.value())["id"]
    by_id = {}
    for message in received:
        by_id.setdefault(message.key().decode(), []).append(json.loads(message.value())["event_id"])
    for memory_id, event_ids in by_id.items():
        assert event_ids == [e["event_id"] for e in sent if e["id"] == memory_id], "order per id"
    for memory_id in by_id:
        assert len({m.partition() for m in received if m.key().decode() == memory_id}) == 1, "one partition per id"
    assert [json.loads(m.value())["op"] for m in received].count("delete") == 1


def test_producer_is_idempotent_with_acks_all(brokers, topic):
    events = MemoryEvents(brokers, topic=topic, linger_ms=1)
    events.close()
    with pytest.raises(ConfigError, match="enable.idempotence must stay True"):
        MemoryEvents(brokers, topic=topic, enable_idempotence=False)
    with pytest.raises(ConfigError, match="acks must stay 'all'"):
        MemoryEvents(brokers, topic=topic, acks=1)


def test_a_refused_event_raises(brokers, topic):
    # The broker refuses a record over its max.message.bytes (1 MiB by default): the delivery fails, and upsert says so.
    with MemoryEvents(brokers, topic=topic, message_max_bytes=8 << 20) as events:
        with pytest.raises(PublishError, match="was not published") as caught:
            events.upsert("ns", [2.0], {**VALUE, "text": "x" * (2 << 20)})
        assert caught.value.failures[0][0] == "ns:(2.0,)"
        events.upsert("ns", [3.0], VALUE)  # the producer goes on


def test_an_unreachable_broker_raises_at_flush():
    events = MemoryEvents("127.0.0.1:1", topic="nowhere", message_timeout_ms=1500)
    events.upsert("ns", [1.0], VALUE, wait=False)
    with pytest.raises(PublishError, match="ns:\\(1.0,\\)"):
        events.flush(10)


def test_tls_and_sasl_from_the_same_variables(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n")
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    assert kafka_config_from_env({}) == {"security.protocol": "PLAINTEXT"}
    config = kafka_config_from_env({"KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USERNAME": "app",
                                    "KAFKA_SASL_PASSWORD_FILE": str(secret), "KAFKA_TLS_CA_FILE": str(ca)})
    assert config == {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "app",
                      "sasl.password": "s3cret", "ssl.ca.location": str(ca)}
    assert kafka_config_from_env({"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u",
                                  "KAFKA_SASL_PASSWORD": "p"})["security.protocol"] == "SASL_PLAINTEXT"
    assert kafka_config_from_env({"KAFKA_TLS": "true", "KAFKA_TLS_REJECT_UNAUTHORIZED": "false"}) == {
        "security.protocol": "SSL", "enable.ssl.certificate.verification": False}
    for env, message in (
        ({"KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_USERNAME is set but KAFKA_SASL_MECHANISM is not"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI", "KAFKA_SASL_USERNAME": "u"}, "is not supported"),
        ({"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD .* is not set"),
        ({"KAFKA_TLS": "false", "KAFKA_TLS_CA_FILE": str(ca)}, "KAFKA_TLS is false but KAFKA_TLS_CA_FILE is set"),
        ({"KAFKA_TLS_CERT_FILE": str(ca)}, "KAFKA_TLS_KEY_FILE is not set"),
        ({"KAFKA_TLS_CA_FILE": str(secret)}, "holds no PEM certificate"),
        ({"KAFKA_TLS_CA_FILE": str(tmp_path / "missing")}, "cannot read"),
        ({"KAFKA_TLS_REJECT_UNAUTHORIZED": "false"}, "TLS is off"),
    ):
        with pytest.raises(ConfigError, match=message) as caught:
            kafka_config_from_env(env)
        assert "s3cret" not in str(caught.value)


def test_topic_follows_the_topic_prefix(brokers):
    assert MemoryEvents(brokers, env={"SFM_TOPIC_PREFIX": "staging."}).topic == "staging.memory.events"
    assert MemoryEvents(brokers, env={}).topic == "memory.events"
    assert MemoryEvents(brokers, topic="other", env={"SFM_TOPIC_PREFIX": "x."}).topic == "other"
