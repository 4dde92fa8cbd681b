"""A real Kafka broker for the suite: KAFKA_BOOTSTRAP_SERVERS when set, else the local single-node
broker that deploy/local/kafka.sh runs from Maven Central jars (started once per run, and
stopped with it unless HARTONOMOUS_KEEP_SERVERS is set). Kafka tests are required: when no
broker can be had they fail, never skip."""

from __future__ import annotations

import os

from tests.support.local_server import local_server


def kafka_bootstrap() -> str:
    """The bootstrap address ("host:port") of a running broker."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or local_server("kafka.sh", "Kafka")
