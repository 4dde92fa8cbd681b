"""Deleting a document: a tenant's reference ends with an AtomReleased, and the bytes go once no
tenant references them.

The log keeps the history (who held what, who deleted it and when); every projection drops what
the reference gave the tenant, so a rebuild or a replay never brings it back. Ownership is per
tenant and storage per content: another tenant's reference to the same bytes keeps the blob.

Blobs are removed right after the append, by this request, with the release's time as the
cutoff: a blob rewritten since (the same bytes ingested again meanwhile) stays. A crash between
the append and the removal leaves blobs nobody references, which the orphan collector (gc.py)
removes after its grace period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hartonomous.events import new_event_id
from hartonomous.events.payloads import AtomReleased, TenantErased
from services.ingest import handlers
from services.ingest.domain import errors


@dataclass(frozen=True)
class ReleaseRequest:
    tenant_id: str
    atom_id: str
    actor: str
    reason: str | None = None
    traceparent: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Released:
    request_id: str
    blobs_removed: int


async def release(deps: handlers.Deps, request: ReleaseRequest) -> Released:
    """Raises AtomNotFound unless the tenant holds the atom itself (a second release included),
    FailedPrecondition for a chunk of its text or a part of its model."""
    catalog, tenant_id, atom_id = deps.catalog, request.tenant_id, request.atom_id
    if not await catalog.refers(tenant_id, atom_id):
        if await catalog.holds(tenant_id, atom_id):
            raise errors.FailedPrecondition(
                f"atom {atom_id} is a chunk of a text tenant {tenant_id} holds:"
                " delete that document"
            )
        raise errors.AtomNotFound(tenant_id, atom_id)
    model = await catalog.model_part(tenant_id, atom_id)
    if model is not None:
        name, version = model
        raise errors.FailedPrecondition(
            f"atom {atom_id} is a part of model {name!r} version {version!r} of tenant"
            f" {tenant_id}; model versions cannot be deleted atom by atom"
        )
    stored = await catalog.find(atom_id)
    chunk_ids = stored.chunk_atom_ids if stored is not None else []
    request_id = request.request_id or new_event_id()
    reason = await handlers.seal(deps, tenant_id, request.reason)
    payload = AtomReleased(atom_id=atom_id, tenant_id=tenant_id, actor=request.actor, reason=reason)
    event = handlers.new_event(deps, payload, request, request_id)
    await deps.publisher.publish(event)
    await handlers.read_your_writes(catalog, [event])
    removed = await _remove_unreferenced(deps, [atom_id, *chunk_ids], event.envelope.occurred_at)
    return Released(request_id, removed)


@dataclass(frozen=True)
class EraseRequest:
    tenant_id: str
    actor: str
    traceparent: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Erased:
    request_id: str
    documents_released: int
    blobs_removed: int


ERASE_PAGE = 500
"""Documents released per append while erasing a tenant."""

ERASURE_ACTOR = "erasure"


async def erase(deps: handlers.Deps, request: EraseRequest) -> Erased:
    """Release every document of the tenant, destroy its data key, and record the erasure.

    Releases come first (nothing of them needs the key); once the key is destroyed no ingest
    can seal for the tenant any more, and a second sweep releases what an ingest sealed just
    before and appended after the first. Erasing again finds nothing to release and records
    the erasure again, which every projection takes as it took the first."""
    request_id = request.request_id or new_event_id()
    released, removed = await _release_all(deps, request, request_id)
    await deps.sealer.keys.destroy(request.tenant_id)
    deps.sealer.forget(request.tenant_id)
    late, late_removed = await _release_all(deps, request, request_id)
    payload = TenantErased(
        tenant_id=request.tenant_id, actor=request.actor, documents_released=released + late
    )
    event = handlers.new_event(deps, payload, request, request_id)
    await deps.publisher.publish(event)
    await handlers.read_your_writes(deps.catalog, [event])
    return Erased(request_id, released + late, removed + late_removed)


async def _release_all(
    deps: handlers.Deps, request: EraseRequest, request_id: str
) -> tuple[int, int]:
    """Release the tenant's documents a page per append; (released, blobs removed)."""
    released = removed = 0
    after = ""
    while views := await deps.catalog.documents(request.tenant_id, after, ERASE_PAGE):
        after = views[-1].atom_id
        events = [
            handlers.new_event(
                deps,
                AtomReleased(atom_id=v.atom_id, tenant_id=request.tenant_id, actor=ERASURE_ACTOR),
                request,
                request_id,
            )
            for v in views
        ]
        await deps.publisher.publish(*events)
        await handlers.read_your_writes(deps.catalog, events)
        at = events[-1].envelope.occurred_at
        atom_ids = [a for v in views for a in (v.atom_id, *(c.atom_id for c in v.chunks))]
        removed += await _remove_unreferenced(deps, atom_ids, at)
        released += len(views)
    return released, removed


async def _remove_unreferenced(
    deps: handlers.Deps, atom_ids: Sequence[str], released_at: datetime
) -> int:
    """Remove the blobs of those atoms no tenant references now (nor a text they are a chunk
    of), unless rewritten since `released_at`; how many went."""
    candidates = list(dict.fromkeys(atom_ids))
    live = await deps.catalog.known(candidates)
    removed = 0
    for atom_id in candidates:
        if atom_id not in live and await deps.blobs.delete(atom_id, written_before=released_at):
            removed += 1
    return removed
