from __future__ import annotations

from hartonomous.runtime.peers import peer_address
from hartonomous.settings import Settings


def test_a_peer_defaults_to_this_process_and_env_overrides_it() -> None:
    settings = Settings(grpc_host="0.0.0.0", grpc_port=50123)
    assert peer_address(settings, "inference", {}) == "127.0.0.1:50123"
    env = {"HARTONOMOUS_INFERENCE_ADDR": "dns:///inference:50051"}
    assert peer_address(settings, "inference", env) == "dns:///inference:50051"
