"""Deleting a document on the real platform (`hartonomous up`), driven over HTTP: a tenant's
delete takes the document out of its catalog and every search mode at once, another tenant
holding the same bytes keeps them, the bytes go when the last holder deletes, and neither a
rebuild of the search index from the log nor `audit verify` brings anything back. Erasing a
tenant leaves nothing it wrote readable: a replay of the log shows it erased, the graph still
equals the log and the billing ledger still reconciles.

The tests run in order on one platform (each step builds on the one before)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.gateway.support import Platform, eventually, running_platform
from tests.support.platform import cli

MODES = ("dense", "sparse", "hybrid")
SEARCHED_FOR_S = 30.0


@dataclass(frozen=True)
class Doc:
    atom_id: str
    word: str
    chunk_ids: list[str]


@dataclass(frozen=True)
class World:
    platform: Platform
    first: str  # writer keys of the two tenants
    second: str
    first_id: str
    second_id: str
    kept: Doc  # only the first tenant's, never deleted
    shared: Doc  # both tenants', deleted by both in turn


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("data") / "d", tmp_path_factory.mktemp("logs")
    ) as running:
        yield running


def _text(word: str, paragraphs: int) -> str:
    """A text long enough for several chunks, with `word` in each paragraph."""
    sentence = "The {w} ledger keeps paragraph {i} of the migration notes, line by line."
    return "\n\n".join(" ".join([sentence.format(w=word, i=i)] * 12) for i in range(paragraphs))


def _ingest(http: httpx.Client, text: str, word: str) -> Doc:
    created = http.post("/v1/atoms", json={"content": text, "metadata": {"owner": "me"}})
    assert created.status_code == 201, created.text
    atom_id = created.json()["atom_id"]
    atom = http.get(f"/v1/atoms/{atom_id}").json()
    return Doc(atom_id, word, [c["atom_id"] for c in atom["chunks"]])


def _found(http: httpx.Client, doc: Doc, mode: str) -> bool:
    reply = http.post("/v1/search", json={"query": f"{doc.word} ledger", "mode": mode, "k": 50})
    assert reply.status_code == 200, reply.text
    return any(hit["document_id"] == doc.atom_id for hit in reply.json()["results"])


def _found_in_every_mode(http: httpx.Client, doc: Doc) -> bool | None:
    return True if all(_found(http, doc, mode) for mode in MODES) else None


def _gone_from_every_mode(http: httpx.Client, doc: Doc) -> bool | None:
    return True if not any(_found(http, doc, mode) for mode in MODES) else None


def _blob(platform: Platform, atom_id: str) -> Path:
    return platform.data_dir / "blobs" / "sha256" / atom_id[:2] / atom_id[2:4] / atom_id


@pytest.fixture(scope="module")
def world(platform: Platform) -> World:
    first_id, second_id = platform.tenant("first"), platform.tenant("second")
    first, second = platform.key("first", "writer"), platform.key("second", "writer")
    word_kept, word_shared = ("zq" + uuid.uuid4().hex[:10] for _ in range(2))
    shared_text = _text(word_shared, 6)
    with platform.client(first) as http:
        kept = _ingest(http, _text(word_kept, 1), word_kept)
        shared = _ingest(http, shared_text, word_shared)
    with platform.client(second) as http:
        assert _ingest(http, shared_text, word_shared).atom_id == shared.atom_id
        eventually(lambda: _found_in_every_mode(http, shared), timeout=120)
    with platform.client(first) as http:
        eventually(lambda: _found_in_every_mode(http, shared), timeout=120)
        eventually(lambda: _found_in_every_mode(http, kept), timeout=120)
    assert len(set(shared.chunk_ids) - {shared.atom_id}) >= 2, "want a text of several chunks"
    return World(platform, first, second, first_id, second_id, kept, shared)


def _problem(reply: httpx.Response, status: int) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = reply.json()
    return problem


def test_a_delete_leaves_the_tenant_at_once_and_the_other_tenant_untouched(world: World) -> None:
    shared = world.shared
    with world.platform.client(world.first) as http:
        deleted = http.delete(f"/v1/atoms/{shared.atom_id}", params={"reason": "asked to"})
        assert deleted.status_code == 204, deleted.text
        _problem(http.get(f"/v1/atoms/{shared.atom_id}"), 404)
        _problem(http.get(f"/v1/atoms/{shared.atom_id}/content"), 404)
        _problem(http.get(f"/v1/atoms/{shared.chunk_ids[1]}"), 404)  # its chunks too
        eventually(lambda: _gone_from_every_mode(http, shared), timeout=SEARCHED_FOR_S)
        assert _found_in_every_mode(http, world.kept)
    with world.platform.client(world.second) as http:
        assert _found_in_every_mode(http, shared)
        assert http.get(f"/v1/atoms/{shared.atom_id}/content").status_code == 200
    assert all(_blob(world.platform, a).is_file() for a in [shared.atom_id, *shared.chunk_ids])


def test_deleting_again_or_what_the_tenant_never_held_is_404(world: World) -> None:
    with world.platform.client(world.first) as http:
        again = _problem(http.delete(f"/v1/atoms/{world.shared.atom_id}"), 404)
        assert world.shared.atom_id in again["detail"]
        _problem(http.delete(f"/v1/atoms/{'0' * 64}"), 404)
        _problem(http.delete("/v1/atoms/not-an-id"), 422)
    with world.platform.client(world.first) as http:
        chunk = world.kept.chunk_ids[0]
        if chunk != world.kept.atom_id:  # a text of one chunk is its own chunk
            _problem(http.delete(f"/v1/atoms/{chunk}"), 409)


def test_the_last_holder_deleting_removes_the_bytes(world: World) -> None:
    shared = world.shared
    with world.platform.client(world.second) as http:
        assert http.delete(f"/v1/atoms/{shared.atom_id}").status_code == 204
        eventually(lambda: _gone_from_every_mode(http, shared), timeout=SEARCHED_FOR_S)
    assert not any(_blob(world.platform, a).exists() for a in [shared.atom_id, *shared.chunk_ids])
    assert _blob(world.platform, world.kept.atom_id).is_file()


def test_a_rebuild_from_the_log_and_an_audit_keep_it_deleted(world: World) -> None:
    platform = world.platform
    assert platform.stop() == 0
    shutil.rmtree(platform.data_dir / "search")  # the index is lost: rebuilt from the log
    platform.start()
    with platform.client(world.first) as http:
        eventually(lambda: _found_in_every_mode(http, world.kept), timeout=120)
        assert _gone_from_every_mode(http, world.shared)
        _problem(http.get(f"/v1/atoms/{world.shared.atom_id}"), 404)
    with platform.client(world.second) as http:
        assert _gone_from_every_mode(http, world.shared)
    # The live graph against one rebuilt from the log, through the running provenance service.
    audit = cli(
        "audit", "verify", "--grpc-port", str(platform.grpc_port), data_dir=platform.data_dir
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert audit.stdout.splitlines()[-1].startswith("OK ")
    # The CLI deletes through the ingest service too, and says so on a second try.
    with platform.client(world.first) as http:
        kept = world.kept.atom_id
        assert http.get(f"/v1/atoms/{kept}").status_code == 200
    args = ["atoms", "delete", kept, "--tenant", world.first_id, "--reason", "support ticket"]
    port = ["--grpc-port", str(platform.grpc_port)]
    deleted = cli(*args, *port, data_dir=platform.data_dir)
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted" in deleted.stderr
    again = cli(*args, *port, data_dir=platform.data_dir)
    assert again.returncode == 2 and "NOT_FOUND" in again.stderr, again.stderr
    with platform.client(world.first) as http:
        _problem(http.get(f"/v1/atoms/{kept}"), 404)


PERSONAL = "Jane Roe"


def _replayed(platform: Platform, topic: str, *flags: str) -> list[dict[str, Any]]:
    replay = cli("replay", "--topic", topic, "--json", *flags, data_dir=platform.data_dir)
    assert replay.returncode == 0, replay.stderr
    return [json.loads(line) for line in replay.stdout.splitlines()]


def test_erasing_a_tenant_leaves_nothing_it_wrote_readable(world: World) -> None:
    platform = world.platform
    third_id = platform.tenant("third")
    writer, admin = platform.key("third", "writer"), platform.key("third", "admin")
    word = "zq" + uuid.uuid4().hex[:10]
    text, shared_text = _text(word, 1), _text(word, 3)
    with platform.client(writer) as http:
        for content in (text, shared_text):
            body = {"content": content, "metadata": {"owner": PERSONAL}, "source_uri": "jr.txt"}
            assert http.post("/v1/atoms", json=body).status_code == 201
        found = http.post("/v1/search", json={"query": word, "mode": "sparse", "k": 5})
        assert found.status_code == 200
        where = {"query": word, "mode": "sparse", "filter": {"metadata": {"owner": PERSONAL}}}
        assert http.post("/v1/search", json=where).status_code == 200
    with platform.client(world.second) as http:
        shared = _ingest(http, shared_text, word)

    with platform.client(admin) as http:
        erased = http.delete(f"/v1/admin/tenants/{third_id}")
        assert erased.status_code == 200, erased.text
        report = erased.json()
        assert (report["tenant_id"], report["name"]) == (third_id, "third")
        assert (report["keys_revoked"], report["documents_released"]) == (2, 2)
        assert report["blobs_removed"] >= 1  # the text only it held; the shared one stays
    eventually(lambda: _refused(platform, writer), timeout=30)  # keys are cached a few seconds
    with platform.client(world.second) as http:
        eventually(lambda: _found_in_every_mode(http, shared), timeout=120)

    # The log keeps the history, and what the tenant wrote only sealed with a destroyed key.
    atoms = [e for e in _replayed(platform, "atoms") if e["payload"].get("tenant_id") == third_id]
    held = [e["payload"] for e in atoms if e["event_type"] in ("AtomIngested", "AtomReferenced")]
    assert len(held) == 2
    assert {(p["metadata_json"], p["source_uri"]) for p in held} == {("[erased]", "[erased]")}
    assert [e["event_type"] for e in atoms][-1] == "TenantErased"
    searches = [e["payload"] for e in _replayed(platform, "search")]
    assert {"owner": "[erased]"} in [p["metadata_filter"] for p in searches]
    for topic in ("atoms", "search"):
        assert PERSONAL not in json.dumps(_replayed(platform, topic, "--sealed"))

    # The graph is still exactly what the log says, and the ledger what `usage` says.
    port = ["--grpc-port", str(platform.grpc_port)]
    audit = cli("audit", "verify", *port, data_dir=platform.data_dir)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    reconciled = cli("billing", "reconcile", data_dir=platform.data_dir)
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr


def _refused(platform: Platform, key: str) -> bool | None:
    with platform.client(key) as http:
        return True if http.get("/v1/usage").status_code == 401 else None
