"""The platform as a client sees it, driven over HTTP: here `hartonomous up` on a temporary data
dir and free ports; tests/e2e/distributed/test_cluster.py runs the same tests on the
distributed topology. One platform for the module (the model loads at every start); the
restart test stops and starts it on the same data."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from hartonomous.modelfiles import SMOLLM2_NAME, smollm2_gguf
from tests.e2e.gateway.support import KEY, Deployment, eventually, running_platform

PROBLEM = "application/problem+json"
JSON = "application/json"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    writer: str
    reader: str


@dataclass(frozen=True)
class Doc:
    """A text tenant A ingested, searchable by a word no other text has."""

    atom_id: str
    word: str
    text: bytes


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with running_platform(
        tmp_path_factory.mktemp("data") / "d", tmp_path_factory.mktemp("logs")
    ) as running:
        yield running


@pytest.fixture(scope="module")
def admin_key(platform: Deployment) -> str:
    """The bootstrap key of tenant `default`, printed by the first start."""
    (key,) = KEY.findall(platform.banner)
    return str(key)


def _tenant(platform: Deployment, name: str) -> Tenant:
    tenant_id = platform.tenant(name)
    return Tenant(tenant_id, platform.key(name, "writer"), platform.key(name, "reader"))


@pytest.fixture(scope="module")
def acme(platform: Deployment) -> Tenant:
    return _tenant(platform, "acme")


@pytest.fixture(scope="module")
def globex(platform: Deployment) -> Tenant:
    return _tenant(platform, "globex")


def _hits(http: httpx.Client, word: str, **query: Any) -> list[dict[str, Any]]:
    reply = http.post("/v1/search", json={"query": word, **query})
    assert reply.status_code == 200, reply.text
    return list(reply.json()["results"])


def _searchable(http: httpx.Client, doc: Doc) -> list[dict[str, Any]] | None:
    hits = _hits(http, doc.word, mode="sparse")
    return hits if any(h["document_id"] == doc.atom_id for h in hits) else None


@pytest.fixture(scope="module")
def doc(platform: Deployment, acme: Tenant) -> Doc:
    word = "zq" + uuid.uuid4().hex[:10]
    text = f"# Field notes\n\nThe codename {word} marks the ledger migration.\n".encode()
    with platform.client(acme.writer) as http:
        created = http.post(
            "/v1/atoms",
            data={"metadata": json.dumps({"team": "ledger"})},
            files={"file": ("notes.md", text, "text/markdown")},
        )
        assert created.status_code == 201, created.text
        atom = created.json()
        assert created.headers["location"] == f"/v1/atoms/{atom['atom_id']}"
        found = Doc(atom["atom_id"], word, text)
        eventually(lambda: _searchable(http, found))
    assert atom["atom_id"] == hashlib.sha256(text).hexdigest()
    assert atom["deduplicated"] is False and atom["chunks"] >= 1
    return found


def test_first_start_prints_url_key_and_quick_start(platform: Deployment, admin_key: str) -> None:
    banner = platform.banner
    assert platform.url in banner and f"{platform.url}/console/" in banner
    curls = [line for line in banner.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) == 3
    assert all("$HARTONOMOUS_KEY" in line for line in curls)
    with platform.client(admin_key) as http:
        assert http.get("/v1/invoices").status_code == 200


def test_ingest_then_search_finds_it_and_usage_counts_it(
    platform: Deployment, acme: Tenant, doc: Doc
) -> None:
    with platform.client(acme.writer) as http:
        atom = http.get(f"/v1/atoms/{doc.atom_id}").json()
        assert atom["metadata"] == {"team": "ledger"}
        assert atom["source_uri"] == "notes.md"
        assert atom["mime_type"].startswith("text/markdown")
        content = http.get(f"/v1/atoms/{doc.atom_id}/content")
        assert content.content == doc.text
        assert content.headers["content-type"].startswith("text/markdown")

        hybrid = _hits(http, f"codename {doc.word}", filter={"metadata": {"team": "ledger"}})
        assert hybrid[0]["document_id"] == doc.atom_id
        assert doc.word in hybrid[0]["snippet"]
        assert _hits(http, doc.word, mode="sparse", filter={"metadata": {"team": "other"}}) == []

        again = http.post(
            "/v1/atoms", json={"content": doc.text.decode(), "mime_type": "text/markdown"}
        )
        assert again.status_code == 201, again.text
        assert again.json()["atom_id"] == doc.atom_id and again.json()["deduplicated"] is True

        def ingested() -> dict[tuple[str, str], Any] | None:
            usage = http.get("/v1/usage").json()["lines"]
            lines = {(line["operation"], line["unit"]): line for line in usage}
            ingest = lines.get(("ingest", "bytes"), {"quantity": 0})
            done = int(ingest["quantity"]) >= 2 * len(doc.text)
            return lines if done and ("embed", "chunks") in lines else None

        lines = eventually(ingested)
        assert {("ingest", "bytes"), ("embed", "tokens"), ("embed", "chunks")} <= set(lines)
        by_day = http.get("/v1/usage", params={"group_by": "day"}).json()["lines"]
        assert all(len(line["day"]) == 10 for line in by_day)


def test_explain_names_the_document_chunk_and_model_version(
    platform: Deployment, acme: Tenant, globex: Tenant, doc: Doc
) -> None:
    with platform.client(acme.reader) as http:
        hit = eventually(lambda: _searchable(http, doc))[0]

        def explained() -> dict[str, Any] | None:
            reply = http.get(f"/v1/provenance/{hit['atom_id']}/explain")
            body = reply.json() if reply.status_code == 200 else None
            return body if body and body["embeddings"] else None

        why = eventually(explained)
        lineage = http.get(f"/v1/provenance/{doc.atom_id}", params={"direction": "downstream"})
    # One entry per holding of the document (the upload and the deduplicated re-ingest).
    assert why["documents"]
    for document in why["documents"]:
        assert document["atom_id"] == doc.atom_id and document["source_uri"] == "notes.md"
    assert document["chunk"].get("index", 0) == hit["chunk_index"]
    model_version = why["embeddings"][0]["model_version"]
    assert len(model_version) == 64 and int(model_version, 16) >= 0
    assert model_version in why["text"] and doc.atom_id in why["text"]
    assert lineage.status_code == 200, lineage.text
    assert any(node["label"] == "Embedding" for node in lineage.json()["nodes"])
    with platform.client(globex.reader) as http:
        hidden = http.get(f"/v1/provenance/{hit['atom_id']}/explain")
    assert hidden.status_code == 404 and hidden.headers["content-type"] == PROBLEM


def test_embeddings_answer_like_openai(platform: Deployment, acme: Tenant) -> None:
    request = {"input": ["a ledger of events", "replay for audit"], "model": "all-MiniLM-L6-v2"}
    with platform.client(acme.writer) as http:
        floats = http.post("/v1/embeddings", json=request).json()
        packed = http.post("/v1/embeddings", json={**request, "encoding_format": "base64"}).json()
        one = http.post("/v1/embeddings", json={"input": "x", "model": floats["model"]})
        unknown = http.post("/v1/embeddings", json={"input": "x", "model": "gpt-4"})
    assert (
        floats["object"] == "list" and floats["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert [d["index"] for d in floats["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 384 for d in floats["data"])
    assert floats["usage"]["prompt_tokens"] == floats["usage"]["total_tokens"] > 0
    decoded = struct.unpack("<384f", base64.b64decode(packed["data"][1]["embedding"]))
    # The JSON numbers are float32s in their shortest form: read back as float32, each is
    # exactly the vector's component the base64 bytes carry.
    written = floats["data"][1]["embedding"]
    assert struct.unpack("<384f", struct.pack("<384f", *written)) == decoded
    assert max(len(repr(x)) for x in written) <= 16  # not float64's 17 significant digits
    assert one.status_code == 200 and len(one.json()["data"]) == 1
    assert unknown.status_code == 422 and unknown.headers["content-type"] == PROBLEM


def test_wrong_or_revoked_key_is_401(platform: Deployment, acme: Tenant) -> None:
    revoked = platform.key("acme", "reader")
    platform.cli("keys", "revoke", revoked.split("_")[1])
    key_id = acme.reader.split("_")[1]
    wrong_secret = f"hk_{key_id}_{'A' * 43}"
    unknown_id = f"hk_{'0' * 16}_{'A' * 43}"
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": f"Basic {acme.reader}"},
        {"Authorization": f"Bearer {wrong_secret}"},
        {"Authorization": f"Bearer {unknown_id}"},
        {"Authorization": f"Bearer {revoked}"},
    ):
        with platform.client(**headers) as http:
            reply = http.post("/v1/search", json={"query": "ledger"})
        assert reply.status_code == 401, headers
        assert reply.headers["content-type"] == PROBLEM
        assert reply.headers["www-authenticate"].startswith("Bearer")
        assert reply.json()["type"] == "urn:hartonomous:problem:unauthenticated"


def test_reader_may_read_and_search_but_not_ingest_or_embed(
    platform: Deployment, acme: Tenant, doc: Doc
) -> None:
    with platform.client(acme.reader) as http:
        assert http.get(f"/v1/atoms/{doc.atom_id}").status_code == 200
        assert _searchable(http, doc)
        assert http.get("/v1/usage").status_code == 200
        refused = [
            http.post("/v1/atoms", json={"content": "hello"}),
            http.post("/v1/embeddings", json={"input": "hello", "model": "all-MiniLM-L6-v2"}),
        ]
    with platform.client(acme.writer) as http:
        refused.append(http.put("/v1/admin/rates", json={"currency": "USD", "rates": []}))
    for reply in refused:
        assert reply.status_code == 403, reply.text
        assert reply.json()["type"] == "urn:hartonomous:problem:forbidden"


def test_tenants_are_isolated(platform: Deployment, globex: Tenant, doc: Doc) -> None:
    with platform.client(globex.writer) as http:
        own = http.post("/v1/atoms", json={"content": f"globex also says {doc.word[::-1]}"})
        assert own.status_code == 201
        assert all(h["document_id"] != doc.atom_id for h in _hits(http, doc.word, mode="sparse"))
        assert all(h["document_id"] != doc.atom_id for h in _hits(http, f"codename {doc.word}"))
        for path in (f"/v1/atoms/{doc.atom_id}", f"/v1/atoms/{doc.atom_id}/content"):
            reply = http.get(path)
            assert reply.status_code == 404 and reply.headers["content-type"] == PROBLEM


def test_client_traceparent_reaches_the_events(platform: Deployment, acme: Tenant) -> None:
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    with platform.client(acme.writer, traceparent=traceparent) as http:
        created = http.post("/v1/atoms", json={"content": f"traced {uuid.uuid4().hex}"})
    atom_id = created.json()["atom_id"]
    replay = platform.run("replay", "--topic", "atoms", "--json")
    events = [json.loads(line) for line in replay.stdout.splitlines()]
    ours = [e for e in events if e["key"] == atom_id]
    assert ours and all(e["headers"]["traceparent"].split("-")[1] == trace_id for e in ours)
    access = [json.loads(line) for line in platform.gateway_log().splitlines() if trace_id in line]
    assert any(entry.get("msg") == "POST /v1/atoms 201" for entry in access)


def test_every_error_is_a_problem_document(platform: Deployment, acme: Tenant) -> None:
    embed_too_big = {"input": "x" * 300_000, "model": "all-MiniLM-L6-v2"}
    with platform.client(acme.writer) as http:
        replies = [
            (404, http.get("/v1/nothing-here")),
            (405, http.delete("/v1/search")),
            (415, http.post("/v1/atoms", content=b"hi", headers={"Content-Type": "text/plain"})),
            (422, http.post("/v1/search", json={"query": "", "k": 1000})),
            (422, http.post("/v1/search", content=b"{", headers={"Content-Type": JSON})),
            (413, http.post("/v1/embeddings", json=embed_too_big)),
            (413, http.post("/v1/atoms", files={"file": ("big.bin", b"\0" * (3 << 20))})),
        ]
    for expected, reply in replies:
        assert reply.status_code == expected, reply.text
        assert reply.headers["content-type"] == PROBLEM
        problem = reply.json()
        assert problem["status"] == expected and problem["title"] and problem["trace_id"]
        assert "Traceback" not in reply.text
    assert replies[1][1].headers["allow"]
    invalid = {tuple(e["loc"]) for e in replies[3][1].json()["errors"]}
    assert invalid == {("body", "query"), ("body", "k")}


@pytest.fixture
def limited_key(platform: Deployment, acme: Tenant) -> str:
    return platform.key("acme", "reader")


async def test_rate_limit_is_429_with_retry_after(platform: Deployment, limited_key: str) -> None:
    headers = {"Authorization": f"Bearer {limited_key}"}
    async with httpx.AsyncClient(base_url=platform.url, headers=headers, timeout=60) as http:
        replies = await asyncio.gather(*(http.get("/v1/atoms/" + "0" * 64) for _ in range(150)))
    statuses = [r.status_code for r in replies]
    assert statuses.count(404) >= 60 and statuses.count(429) >= 30, statuses
    limited = next(r for r in replies if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["type"] == "urn:hartonomous:problem:rate-limited"


def test_quota_warns_then_refuses(platform: Deployment, admin_key: str) -> None:
    tenant = _tenant(platform, "quotaco")
    request = {"input": "a dozen tokens or so of text to embed here", "model": "all-MiniLM-L6-v2"}

    def put_quota(limit: str) -> dict[str, Any]:
        quota = {"operation": "embed", "limit": limit, "unit": "tokens", "period": "day"}
        with platform.client(admin_key) as http:
            url = f"/v1/admin/tenants/{tenant.tenant_id}/quota"
            reply = http.put(url, json={**quota, "soft_limit_ratio": "0.1"})
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    assert put_quota("100")["tenant_id"] == tenant.tenant_id
    with platform.client(tenant.writer) as http:
        assert http.post("/v1/embeddings", json=request).status_code == 200

        def warned() -> httpx.Response | None:
            # Usage reaches billing's counters asynchronously (from the log).
            reply = http.post("/v1/embeddings", json=request)
            assert reply.status_code == 200, reply.text
            return reply if "x-quota-warning" in reply.headers else None

        assert "tokens used" in eventually(warned).headers["x-quota-warning"]
        put_quota("20")

        def refused() -> httpx.Response | None:
            reply = http.post("/v1/embeddings", json=request)
            return reply if reply.status_code == 429 else None

        denied = eventually(refused)
        [standing] = http.get("/v1/quotas").json()
    assert denied.json()["type"] == "urn:hartonomous:problem:quota-exceeded"
    assert int(denied.headers["retry-after"]) >= 1
    assert (standing["operation"], standing["unit"], standing["period"]) == (
        "embed",
        "tokens",
        "day",
    )
    assert Decimal(standing["limit"]) == 20 and Decimal(standing["used"]) > 0
    assert Decimal(standing["left"]) == max(20 - Decimal(standing["used"]), Decimal(0))
    assert standing["soft_limit_reached"]


def test_probes_and_metrics(platform: Deployment, acme: Tenant) -> None:
    with platform.client() as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz").json()
        exposition = http.get("/metrics").text
    assert ready["status"] == "ready"
    assert set(ready["checks"]) == {
        "postgres",
        "log",
        "ingest",
        "inference",
        "search",
        "billing",
        "provenance",
        "control",
    }
    assert 'method="POST",route="/v1/search",status="200"' in exposition
    assert "hartonomous_consumer_lag" in platform.metrics("search")  # its projections' lag


def test_a_config_change_reaches_the_running_service_and_its_history(
    platform: Deployment, admin_key: str
) -> None:
    """Changed over REST, the batching wait is live in the inference service (its metric);
    changed back with the CLI (through the control service), the history has both."""
    knob = "inference.batch.max_wait_ms"

    def wait_is(value: str) -> bool | None:
        exposition = platform.metrics("inference")
        return True if f"hartonomous_inference_max_wait_ms {value}" in exposition else None

    with platform.client(admin_key) as http:
        changed = http.put(f"/v1/admin/config/{knob}", json={"value": 12.5, "reason": "e2e"})
    assert changed.status_code == 200, changed.text
    eventually(lambda: wait_is("12.5"), timeout=30)
    assert platform.cli("config", "set", knob, "5", "--reason", "back") == "5"
    eventually(lambda: wait_is("5.0"), timeout=30)
    history = json.loads(platform.cli("config", "history", knob, "--json"))
    assert [(c["new_value"], c["reason"]) for c in history][:2] == [("5", "back"), ("12.5", "e2e")]
    assert history[0]["actor"].startswith("user:cli-")


def test_the_loop_answers_over_rest_and_the_cli(platform: Deployment, admin_key: str) -> None:
    """The five stages run in `hartonomous up`: the loop's cycles are listed (a young
    platform may have none yet), and an unknown decision is a caller's mistake both ways."""
    assert isinstance(json.loads(platform.cli("ooda", "cycles", "--json")), list)
    assert platform.cli("ooda", "mode", "advise", "--reason", "e2e") == "advise"
    status = platform.run("ooda", "status")
    assert status.returncode == 0 and "mode: advise (set by user:cli-" in status.stdout
    assert platform.cli("ooda", "mode", "auto", "--reason", "e2e done") == "auto"
    unknown = "0190f0f0-0000-7000-8000-000000000000"
    refused = platform.run("ooda", "approve", unknown)
    assert refused.returncode == 2 and f"NOT_FOUND: no decision {unknown}" in refused.stderr
    with platform.client(admin_key) as http:
        assert http.get("/v1/ooda/decisions").status_code == 200
        missing = http.post(f"/v1/admin/ooda/decisions/{unknown}/reject", json={"reason": "r"})
    assert missing.status_code == 404 and unknown in missing.json()["detail"]


def test_models_are_tensor_atoms_over_rest_and_the_cli(
    platform: Deployment, tmp_path: Path
) -> None:
    """SmolLM2 as v1 over REST (every tensor already held: the platform stored its bundled copy
    on first start), a v2 with one tensor changed through the CLI (only that tensor is new),
    promotions answered as of any moment, both files back byte for byte, a tensor-level diff,
    and a file that lies about itself refused with nothing stored."""
    tenant = platform.tenant("modelco")
    admin, reader = platform.key(tenant, "admin"), platform.key(tenant, "reader")
    v1_bytes = smollm2_gguf().read_bytes()
    v2_file = tmp_path / "smol-v2.gguf"
    changed = bytearray(v1_bytes)
    changed[-1000] ^= 0xFF  # inside the last tensor
    v2_file.write_bytes(changed)

    def bundled_smollm2_is_live() -> bool | None:
        shown = platform.run("models", "show", SMOLLM2_NAME)
        return True if shown.returncode == 0 and "live -" not in shown.stdout else None

    eventually(bundled_smollm2_is_live, timeout=120)
    with platform.client(admin) as http:
        created = http.post(
            "/v1/models",
            data={"name": "smol", "version": "v1"},
            files={"file": ("smol.gguf", v1_bytes)},
        )
        assert created.status_code == 201, created.text
        v1 = created.json()
        assert created.headers["location"] == "/v1/models/smol/versions/v1"
        assert (v1["tensors"], v1["new_bytes"], v1["format"]) == (272, 0, "gguf")
        assert http.post("/v1/models/smol/versions/v1/promote").json()["live_version"] == "v1"
        between = datetime.now(UTC)

        manifest = platform.cli(
            "models", "ingest", str(v2_file), "--name", "smol", "--tenant", tenant
        )
        assert (
            platform.cli("models", "promote", "smol", "v2", "--reason", "e2e", "--tenant", tenant)
            == "v2"
        )
        v2 = http.get("/v1/models/smol/versions/v2").json()
        assert (v2["manifest_atom_id"], v2["new_tensors"]) == (manifest, 1)
        [shared] = v2["shared_with"]
        assert (shared["version"], shared["tensors"]) == ("v1", 271)

        bad = http.post(
            "/v1/models",
            data={"name": "smol", "version": "v3"},
            files={"file": ("cut.gguf", v1_bytes[: len(v1_bytes) // 2])},
        )
        assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM, bad.text
        forbidden = httpx.post(
            f"{platform.url}/v1/models",
            headers={"Authorization": f"Bearer {reader}"},
            data={"name": "smol", "version": "v3"},
            files={"file": ("smol.gguf", b"GGUF")},
        )
        assert forbidden.status_code == 403

    with platform.client(reader) as http:
        then = http.get("/v1/models/smol", params={"as_of": between.isoformat()}).json()
        now = http.get("/v1/models/smol").json()
        assert (then["live_version"], now["live_version"]) == ("v1", "v2")
        assert then["manifest"]["source"]["sha256"] == hashlib.sha256(v1_bytes).hexdigest()
        assert [v["version"] for v in now["versions"]] == ["v1", "v2"]
        diff = http.get("/v1/models/smol/diff", params={"from": "v1", "to": "v2"}).json()
        assert [c["tensor"] for c in diff["changed"]] == ["output_norm.weight"]
        assert diff["unchanged_tensors"] == 271
        for version, expected in (("v1", v1_bytes), ("v2", bytes(changed))):
            file = http.get(f"/v1/models/smol/versions/{version}/file")
            assert hashlib.sha256(file.content).digest() == hashlib.sha256(expected).digest()
        assert http.get("/v1/models/smol/versions/v3").status_code == 404


def test_the_openai_client_chats_and_completes_streaming_and_not(
    platform: Deployment, acme: Tenant, admin_key: str
) -> None:
    """SmolLM2, loaded from its tensor atoms, through the official `openai` client: a greedy
    chat answer, the same seeded answer streamed token by token, a completion, usage that is
    metered, and the errors a client can act on."""
    client = OpenAI(base_url=f"{platform.url}/v1", api_key=acme.writer, timeout=300)
    with platform.client(acme.reader) as http:

        def generation_ready() -> bool | None:
            models = http.get("/v1/models").json()["data"]
            return True if all(m["ready"] for m in models) else None

        eventually(generation_ready, timeout=300, every=2)
    chat = [{"role": "user", "content": "What is the capital of France?"}]
    answer = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=chat,
        max_tokens=24,
        temperature=0,
    )
    assert "Paris" in (answer.choices[0].message.content or "")
    assert answer.usage is not None and answer.usage.prompt_tokens > 10

    seeded = {"temperature": 0.8, "seed": 11, "max_tokens": 16}
    whole = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=chat,
        **seeded,
    )
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=chat,
        stream=True,
        stream_options={"include_usage": True},
        **seeded,
    )
    pieces, usage, stream_id = [], None, ""
    for chunk in stream:
        stream_id = chunk.id
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == whole.choices[0].message.content
    with platform.client(admin_key) as http:
        verified = http.post(f"/v1/admin/inference/{whole.id}/verify")
    assert verified.status_code == 200, verified.text
    assert verified.json()["verdict"] == "identical", verified.json()
    assert platform.cli("inference", "verify", stream_id) == "identical"
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens

    completion = client.completions.create(
        model="smollm2-135m-instruct", prompt="One, two, three,", max_tokens=6, temperature=0
    )
    assert completion.choices[0].text and completion.usage is not None

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=chat)
    with platform.client(acme.writer) as http:
        too_long = http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "word " * 2000}], "max_tokens": 8},
        )
        assert too_long.status_code == 400, too_long.text
        assert "exceed the context of 1024 tokens" in too_long.json()["detail"]
        bad_role = http.post(
            "/v1/chat/completions", json={"messages": [{"role": "robot", "content": "hi"}]}
        )
        assert bad_role.status_code == 422 and "unknown role" in bad_role.json()["detail"]
        for body in (
            b'{"messages": [{"role": "user", "content": "\\ud800"}]}',  # not UTF-8
            b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e40}',
            b'{"prompt": "hi", "seed": 99999999999999999999999}',
        ):
            refused = http.post(
                "/v1/completions" if b"prompt" in body else "/v1/chat/completions",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert refused.status_code == 422, refused.text

    def metered() -> list[dict[str, Any]] | None:
        with platform.client(acme.reader) as http:
            rows = http.get("/v1/usage").json()["lines"]
        found = [r for r in rows if r["operation"] == "generate"]
        return (
            found if {r["unit"] for r in found} == {"prompt_tokens", "completion_tokens"} else None
        )

    eventually(metered, timeout=60)


def test_a_generation_stops_where_its_quota_does(platform: Deployment, admin_key: str) -> None:
    """A quota of 5 completion tokens: an answer asking for 64 is streamed up to the 5th and
    ends as any answer at max_tokens does (finish_reason, usage, [DONE]); the next is refused."""
    tenant = _tenant(platform, "thrifty")
    quota = {"operation": "generate", "limit": "5", "unit": "completion_tokens", "period": "day"}
    with platform.client(admin_key) as http:
        reply = http.put(f"/v1/admin/tenants/{tenant.tenant_id}/quota", json=quota)
        assert reply.status_code == 200, reply.text
    ask = {
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
        "max_tokens": 64,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with platform.client(tenant.writer) as http:
        with http.stream("POST", "/v1/chat/completions", json=ask) as streamed:
            assert streamed.status_code == 200
            assert "capped at the 5 completion_tokens left" in streamed.headers["x-quota-warning"]
            lines = [line for line in streamed.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        reasons = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert reasons[-1] == "length"
        assert chunks[-1]["usage"]["completion_tokens"] == 5
        refused = http.post("/v1/chat/completions", json={**ask, "stream": False})
    assert refused.status_code == 429, refused.text
    assert refused.json()["type"] == "urn:hartonomous:problem:quota-exceeded"


def test_a_tenant_that_keeps_no_prompts_gets_receipts_that_cannot_rerun(
    platform: Deployment, admin_key: str
) -> None:
    tenant = _tenant(platform, "discreet")
    url = f"/v1/admin/tenants/{tenant.tenant_id}/settings"
    with platform.client(admin_key) as http:
        assert http.get(url).json()["keep_generation_inputs"] is True
        changed = http.put(url, json={"keep_generation_inputs": False})
        assert changed.status_code == 200, changed.text
        assert changed.json()["keep_generation_inputs"] is False
        assert http.put(url, json={"keep_generation_inputs": "maybe"}).status_code == 422
        assert http.get("/v1/admin/tenants/nobody/settings").status_code == 404
    ask = {"prompt": "One, two, three,", "max_tokens": 4, "temperature": 0}
    with platform.client(tenant.writer) as http:
        answered = http.post("/v1/completions", json=ask)
        assert answered.status_code == 200, answered.text
        assert http.get(url).status_code == 403  # settings are the platform admin's
    with platform.client(admin_key) as http:
        verified = http.post(f"/v1/admin/inference/{answered.json()['id']}/verify").json()
    assert verified["verdict"] == "cannot_rerun", verified
    assert "did not store the input" in verified["reason"]

    platform.cli("tenants", "set", "discreet", "--keep-generation-inputs", "true")
    with platform.client(admin_key) as http:
        assert http.get(url).json()["keep_generation_inputs"] is True


def test_keys_cli_never_shows_secrets(platform: Deployment, acme: Tenant) -> None:
    listed = json.loads(platform.cli("keys", "list", "--tenant", "acme", "--json"))
    assert {row["role"] for row in listed} >= {"reader", "writer"}
    assert all(row["tenant_id"] == acme.tenant_id for row in listed)
    assert not KEY.search(json.dumps(listed))
    duplicate = platform.run("tenants", "create", "acme")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr


def test_tenants_keys_and_documents_over_rest(
    platform: Deployment, admin_key: str, acme: Tenant
) -> None:
    with platform.client(admin_key) as admin:
        created = admin.post("/v1/admin/tenants", json={"name": "rest-tenant"})
        assert created.status_code == 201, created.text
        tenant = created.json()["tenant_id"]
        assert admin.post("/v1/admin/tenants", json={"name": "rest-tenant"}).status_code == 409
        assert admin.post("/v1/admin/tenants", json={"name": "no spaces"}).status_code == 422
        assert tenant in [t["tenant_id"] for t in admin.get("/v1/admin/tenants").json()]
        issued = admin.post(f"/v1/admin/tenants/{tenant}/keys", json={"role": "writer"})
        assert issued.status_code == 201 and issued.headers["cache-control"] == "no-store"
        key = issued.json()
        assert KEY.fullmatch(key["api_key"]) and key["role"] == "writer"
        listed = admin.get("/v1/admin/tenants/rest-tenant/keys").json()
        assert [k["key_id"] for k in listed] == [key["key_id"]]
        assert not KEY.search(json.dumps(listed))  # a secret is shown once, never listed
        with platform.client(key["api_key"]) as writer:
            first = writer.post("/v1/atoms", json={"content": "listed over rest, one"})
            second = writer.post("/v1/atoms", json={"content": "listed over rest, two"})
            assert first.status_code == second.status_code == 201
            page = writer.get("/v1/atoms", params={"limit": 1}).json()
            rest = writer.get("/v1/atoms", params={"after": page["next_after"]}).json()
            ids = {a["atom_id"] for a in page["atoms"] + rest["atoms"]}
            assert ids == {first.json()["atom_id"], second.json()["atom_id"]}
            assert rest["next_after"] is None
            other = admin.get("/v1/usage", params={"tenant": "rest-tenant"}).json()
            assert other["tenant_id"] == tenant
            assert writer.get("/v1/usage", params={"tenant": "default"}).status_code == 403
            assert admin.delete(f"/v1/admin/keys/{key['key_id']}").status_code == 204
            assert admin.delete(f"/v1/admin/keys/{key['key_id']}").status_code == 404
            assert writer.get("/v1/atoms").status_code == 401
    with platform.client(acme.writer) as writer:
        assert writer.get("/v1/admin/tenants").status_code == 403


def test_openapi_fuzzing_finds_no_server_error(platform: Deployment, admin_key: str) -> None:
    """Schemathesis against the live app: no 5xx, and every response (status, content type,
    headers, body) conforms to /openapi.json. Bounded: a few examples per operation."""
    checks = ",".join(
        [
            "not_a_server_error",
            "status_code_conformance",
            "content_type_conformance",
            "response_headers_conformance",
            "response_schema_conformance",
        ]
    )
    config = Path(__file__).with_name("schemathesis.toml")
    command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config)]
    command += ["run"]
    command += [f"{platform.url}/openapi.json", "-H", f"Authorization: Bearer {admin_key}"]
    command += ["--checks", checks, "--phases", "coverage,fuzzing", "--max-examples", "8"]
    # One worker: with two threads, hypothesis' strategy reprs (ast.parse of lambdas) hit
    # CPython 3.11's "AST constructor recursion depth mismatch" race (gh-106905) now and then.
    command += ["--workers", "1", "--no-shrink", "--generation-database", "none", "--seed", "1"]
    command += ["--request-timeout", "60"]
    run = subprocess.run(
        [*command, "--no-color"], cwd=platform.logs, capture_output=True, text=True, timeout=180
    )
    assert run.returncode == 0, run.stdout[-6000:]
    with platform.client(admin_key) as http:  # nothing the later tests rely on was destroyed
        assert http.get("/v1/admin/tenants").status_code == 200


def test_restart_keeps_data_and_prints_no_second_key(
    platform: Deployment, acme: Tenant, doc: Doc
) -> None:
    assert platform.stop() == 0
    logged = [
        json.loads(line) for line in platform.gateway_log().splitlines() if line.startswith("{")
    ]
    messages = [entry["msg"] for entry in logged]
    assert messages[-2:] == ["draining", "stopped"]
    banner = platform.start()
    assert platform.url in banner and not KEY.search(banner)
    with platform.client(acme.reader) as http:
        assert http.get(f"/v1/atoms/{doc.atom_id}/content").content == doc.text
        eventually(lambda: _searchable(http, doc))
