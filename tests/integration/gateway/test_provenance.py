"""The real provenance service behind the gateway. GET /v1/provenance/tensors/{atom_id}/models
says which of the caller's model versions hold a tensor's bytes, by the caller's own names; a
tensor the caller has no model with is a 404 problem, whoever else has one.
GET /v1/provenance/{generation id}/explain says how a generation was made; to another tenant it
is a 404 problem."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from services.gateway.keys import Role
from services.provenance.service import ProvenanceService
from tests.integration.gateway.conftest import CONFIG, Gateway, running_gateway
from tests.integration.provenance.conftest import settled
from tests.support.harness import CODEC
from tests.support.provenance_flow import (
    Generation,
    Keyed,
    ModelHistory,
    generation,
    model_history,
    records,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    provenance = ProvenanceService()
    async with running_gateway(CONFIG, tmp_path_factory.mktemp("gateway"), provenance) as gw:
        yield gw


async def appended(gateway: Gateway, events: list[Keyed]) -> None:
    """In the log and in the graph."""
    event_log = gateway.harness.event_log
    await event_log.append_atomic(records(CODEC, events))
    (provenance,) = [s for s in gateway.harness.services if isinstance(s, ProvenanceService)]
    await settled(event_log, provenance.store.positions)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def history(gateway: Gateway) -> ModelHistory:
    """acme's two versions and promotions, and globex's model, in the graph."""
    history = model_history(gateway.tenant_ids["acme"], gateway.tenant_ids["globex"])
    await appended(gateway, history.events)
    return history


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def answer(gateway: Gateway, history: ModelHistory) -> Generation:
    """A greedy chat completion by acme's tiny-llm v2."""
    answer = generation(history.v2, gateway.tenant_ids["acme"], "Hi?", "Hello.", greedy=True)
    await appended(gateway, answer.events)
    return answer


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


async def test_a_reader_sees_how_its_generation_was_made(
    gateway: Gateway, history: ModelHistory, answer: Generation
) -> None:
    path = f"/v1/provenance/{answer.generation_id}/explain"
    reply = await gateway.http.get(path, headers=gateway.auth(Role.READER))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    gen = body["generation"]
    assert body["atom_id"] == "" and gen["generation_id"] == answer.generation_id
    assert (gen["model_version"], gen["tensor_count"]) == (history.v2.manifest, "3")
    assert gen["model_names"] == [{"name": "tiny-llm", "version": "v2"}]
    assert (gen["input_atom_id"], gen["output_atom_id"]) == (answer.input_atom, answer.output_atom)
    # Greedy: the zeros are parameters too, and say so.
    assert gen["parameters"]["temperature"] == 0 and gen["parameters"]["top_k"] == 0
    assert [d["atom_id"] for d in body["documents"]] == [answer.input_atom, answer.output_atom]
    assert answer.generation_id in body["text"]

    theirs = await gateway.http.get(path, headers=gateway.auth(Role.READER, "globex"))
    assert (theirs.status_code, theirs.headers["content-type"]) == (404, PROBLEM)
    assert history.v2.manifest not in theirs.text
