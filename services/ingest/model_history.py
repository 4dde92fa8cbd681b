"""A model name's versions in time: promotion (a rollback is the promotion of an earlier
version), the name as of any moment, and what changed between two versions.

Which version is live is never stored as a current state: it is the last ModelVersionPromoted
up to the moment asked about, so the catalog rebuilt from the log answers the same for every
past moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hartonomous.blobs import BlobStore
from hartonomous.events import new_event_id
from hartonomous.events.payloads import ModelVersionPromoted
from services.ingest import handlers
from services.ingest.domain import errors
from services.ingest.domain.results import ModelVersionView, ModelView, TensorPair
from services.ingest.store import Catalog


@dataclass(frozen=True)
class PromoteRequest:
    tenant_id: str
    name: str
    version: str
    reason: str | None = None
    traceparent: str | None = None
    request_id: str | None = None


async def promote(deps: handlers.Deps, request: PromoteRequest) -> ModelView:
    """Raises ModelVersionNotFound; promoting the live version again appends nothing."""
    version = await version_of(deps.catalog, request.tenant_id, request.name, request.version)
    history = await deps.catalog.promotions(request.tenant_id, request.name, datetime.now(UTC))
    live = history[-1].version if history else None
    if live != request.version:
        payload = ModelVersionPromoted(
            tenant_id=request.tenant_id,
            name=request.name,
            version=request.version,
            model_atom_id=version.manifest_atom_id,
            previous_version=live,
            reason=request.reason,
        )
        event = handlers.new_event(deps, payload, request, request.request_id or new_event_id())
        await deps.publisher.publish(event)
        await handlers.read_your_writes(deps.catalog, [event])
    return await model_as_of(deps.catalog, deps.blobs, request.tenant_id, request.name, None)


async def model_as_of(
    catalog: Catalog, blobs: BlobStore, tenant_id: str, name: str, as_of: datetime | None
) -> ModelView:
    """The name at `as_of` (None: now): the versions ingested by then and the live one."""
    moment = datetime.now(UTC) if as_of is None else as_of
    versions = [v for v in await catalog.model_versions(tenant_id, name) if v.ingested_at <= moment]
    if not versions:
        raise errors.ModelNotFound(tenant_id, name)
    promotions = await catalog.promotions(tenant_id, name, moment)
    live = next((v for v in versions if promotions and v.version == promotions[-1].version), None)
    manifest = await blobs.get(live.manifest_atom_id) if live is not None else b""
    return ModelView(name, moment, versions, promotions, live, manifest.decode())


async def diff(
    catalog: Catalog, tenant_id: str, name: str, from_version: str, to_version: str
) -> list[TensorPair]:
    """Every tensor name of either version with its atom on each side."""
    for version in (from_version, to_version):
        await version_of(catalog, tenant_id, name, version)
    return await catalog.tensor_pairs(tenant_id, name, from_version, to_version)


async def version_of(catalog: Catalog, tenant_id: str, name: str, version: str) -> ModelVersionView:
    found = await catalog.model_version(tenant_id, name, version)
    if found is None:
        raise errors.ModelVersionNotFound(tenant_id, name, version)
    return found
