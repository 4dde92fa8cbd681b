"""How a service reaches another over gRPC: by address from settings, never by import.

`HARTONOMOUS_<SERVICE>_ADDR` (e.g. `HARTONOMOUS_INFERENCE_ADDR=dns:///inference:50051` in
Kubernetes) names a peer; unset, the peer is this process's own gRPC server, which is right for
`hartonomous up` where every service shares one server."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import grpc

from hartonomous.settings import Settings

# Retries UNAVAILABLE with exponential backoff (gRPC service config); deadlines stay per call.
_RETRY = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        "loadBalancingConfig": [{"round_robin": {}}],
    }
)


def peer_address(settings: Settings, service: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    configured = env.get(f"HARTONOMOUS_{service.upper()}_ADDR")
    if configured:
        return configured
    host = "127.0.0.1" if settings.grpc_host in ("0.0.0.0", "::", "[::]") else settings.grpc_host
    return f"{host}:{settings.grpc_port}"


def peer_channel(settings: Settings, service: str) -> grpc.aio.Channel:
    """An aio channel to `service` that retries UNAVAILABLE with backoff."""
    return grpc.aio.insecure_channel(
        peer_address(settings, service),
        options=[("grpc.service_config", _RETRY), ("grpc.enable_retries", 1)],
    )
