"""GET /v1/provenance/tensors/{atom_id}/models: the real provenance service behind the gateway
says which of the caller's model versions hold a tensor's bytes, by the caller's own names; a
tensor the caller has no model with is a 404 problem, whoever else has one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from services.gateway.keys import Role
from services.provenance.service import ProvenanceService
from tests.integration.gateway.conftest import CONFIG, Gateway, running_gateway
from tests.integration.provenance.conftest import settled
from tests.support.harness import CODEC
from tests.support.provenance_flow import ModelHistory, model_history, records

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    provenance = ProvenanceService()
    async with running_gateway(CONFIG, tmp_path_factory.mktemp("gateway"), provenance) as gw:
        yield gw


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def history(gateway: Gateway) -> ModelHistory:
    """acme's two versions and promotions, and globex's model, in the graph."""
    history = model_history(gateway.tenant_ids["acme"], gateway.tenant_ids["globex"])
    event_log = gateway.harness.event_log
    await event_log.append_atomic(records(CODEC, history.events))
    (provenance,) = [s for s in gateway.harness.services if isinstance(s, ProvenanceService)]
    await settled(event_log, provenance.store.positions)
    return history


def path(atom_id: str) -> str:
    return f"/v1/provenance/tensors/{atom_id}/models"


async def test_a_reader_sees_its_versions_that_hold_the_tensor(
    gateway: Gateway, history: ModelHistory
) -> None:
    reader = gateway.auth(Role.READER)
    reply = await gateway.http.get(path(history.shared), headers=reader)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "atom_id": history.shared,
        "models": [
            {
                "name": "tiny-llm",
                "version": release.version,
                "model_atom_id": release.manifest,
                "tensor_names": ["embed"],
            }
            for release in (history.v1, history.v2)
        ],
    }
    changed = await gateway.http.get(path(history.changed), headers=reader)
    assert [m["version"] for m in changed.json()["models"]] == ["v2"]


async def test_another_tenants_model_or_a_bad_id_is_a_problem(
    gateway: Gateway, history: ModelHistory
) -> None:
    theirs = await gateway.http.get(
        path(history.changed), headers=gateway.auth(Role.READER, "globex")
    )
    assert (theirs.status_code, theirs.headers["content-type"]) == (404, PROBLEM)
    assert "tiny-llm" not in theirs.text

    malformed = await gateway.http.get(path("ABC"), headers=gateway.auth(Role.READER))
    assert (malformed.status_code, malformed.headers["content-type"]) == (422, PROBLEM)
    assert (await gateway.http.get(path(history.shared))).status_code == 401
