"""How a service reaches another over gRPC: by address from settings, never by import.

`HARTONOMOUS_<SERVICE>_ADDR` (e.g. `HARTONOMOUS_INFERENCE_ADDR=dns:///inference:50051` in
Kubernetes) names a peer; unset, the peer is this process's own gRPC server, which is right for
`hartonomous up` where every service shares one server, and its unary calls then run in
process (local_calls)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import grpc

from hartonomous.runtime.local_calls import RETRY, LocalFirstChannel
from hartonomous.settings import Settings

# Retries UNAVAILABLE with exponential backoff (gRPC service config); deadlines stay per call.
_RETRY = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": RETRY.max_attempts,
                    "initialBackoff": f"{RETRY.initial_backoff_s}s",
                    "maxBackoff": f"{RETRY.max_backoff_s}s",
                    "backoffMultiplier": RETRY.multiplier,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
        "loadBalancingConfig": [{"round_robin": {}}],
    }
)


def own_address(grpc_host: str, grpc_port: int) -> str:
    """Where this process's own gRPC server is reached from this host."""
    host = "127.0.0.1" if grpc_host in ("0.0.0.0", "::", "[::]") else grpc_host
    return f"{host}:{grpc_port}"


def peer_address(settings: Settings, service: str, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    configured = env.get(f"HARTONOMOUS_{service.upper()}_ADDR")
    if configured:
        return configured
    return own_address(settings.grpc_host, settings.grpc_port)


def network_channel(address: str) -> grpc.aio.Channel:
    """An aio channel to `address` that retries UNAVAILABLE with backoff."""
    options = [("grpc.service_config", _RETRY), ("grpc.enable_retries", 1)]
    return grpc.aio.insecure_channel(address, options=options)


def peer_channel(settings: Settings, service: str) -> grpc.aio.Channel:
    """A channel to `service` (network_channel) whose unary calls run in process while this
    process serves `service` at that address."""
    address = peer_address(settings, service)
    return LocalFirstChannel(network_channel(address), address)
