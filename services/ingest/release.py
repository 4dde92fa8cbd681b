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
from hartonomous.events.payloads import AtomReleased
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
    payload = AtomReleased(
        atom_id=atom_id, tenant_id=tenant_id, actor=request.actor, reason=request.reason
    )
    event = handlers.new_event(deps, payload, request, request_id)
    await deps.publisher.publish(event)
    await handlers.read_your_writes(catalog, [event])
    removed = await _remove_unreferenced(deps, [atom_id, *chunk_ids], event.envelope.occurred_at)
    return Released(request_id, removed)


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
