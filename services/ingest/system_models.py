"""The platform's own models as tensor atoms: on start, each bundled model (hartonomous/
modelfiles.py) that the system tenant lacks is ingested, companion files first, and promoted,
so inference loads MiniLM from its atoms and an upgraded package becomes a new live version.
Idempotent: a model already held at its package's version costs one catalog read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from hartonomous.modelfiles import SYSTEM_TENANT, BundledModel, bundled_models
from services.ingest import handlers, model_history, models
from services.ingest.domain import errors
from services.ingest.domain.header import parse_header
from services.ingest.domain.models.version import parse_model_header

logger = logging.getLogger(__name__)

PIECE = 1 << 20


async def ingest_system_models(deps: handlers.Deps) -> None:
    """A version stored now (first start, or a package upgrade) is promoted; one held already
    stays as the operator left it (a rollback survives a restart)."""
    names = []
    for bundled in bundled_models():
        names.append(bundled.name)
        if await deps.catalog.model_version(SYSTEM_TENANT, bundled.name, bundled.version):
            continue
        with contextlib.suppress(errors.AlreadyExists):  # another replica stored it meanwhile
            await ingest_bundled(deps, bundled)
        await model_history.promote(
            deps,
            model_history.PromoteRequest(
                SYSTEM_TENANT, bundled.name, bundled.version, reason="bundled with the platform"
            ),
        )
    logger.info("bundled models held as atoms", extra={"models": names})


async def ingest_bundled(deps: handlers.Deps, bundled: BundledModel) -> None:
    files = {}
    for path, file in bundled.companions.items():
        companion = parse_header(
            tenant_id=SYSTEM_TENANT, modality="model", source_uri=f"{bundled.name}/{path}"
        )
        files[path] = (await handlers.ingest_atom(deps, companion, _read(file))).atom_id
    header = parse_model_header(
        tenant_id=SYSTEM_TENANT,
        name=bundled.name,
        version=bundled.version,
        source_uri=bundled.weights.name,
        files=files,
    )
    view = await models.ingest_model(deps, header, _read(bundled.weights))
    logger.info(
        "bundled model stored as atoms",
        extra={"model": bundled.name, "version": bundled.version, "tensors": view.tensors},
    )


async def _read(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while piece := await asyncio.to_thread(f.read, PIECE):
            yield piece
