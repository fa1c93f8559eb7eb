import os
import uuid

import pytest


@pytest.fixture
def brokers():
    servers = os.environ.get("KAFKA_BROKERS")
    if not servers:
        pytest.skip("KAFKA_BROKERS is not set: the producer tests need a real broker (npm test sets it)")
    return servers


@pytest.fixture
def database_url():
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.skip("DATABASE_URL is not set: the outbox tests need a real PostgreSQL (npm test sets it)")
    return url


@pytest.fixture
def topic(brokers):
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"pytest-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": brokers})
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])[name].result(30)
    yield name
    admin.delete_topics([name])[name].result(30)
