"""/v1/export: everything the caller's tenant holds, as one archive streamed as it is written
(portability.py, archive.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from services.gateway.deps import Admin, GatewayDep
from services.gateway.portability import export_tenant
from services.gateway.problems import documented

router = APIRouter(prefix="/v1", tags=["export"])


@router.get(
    "/export",
    summary="Export the tenant's data",
    description="A tar archive, streamed: each document's catalog entry and bytes, usage by "
    "day, invoices, and last a manifest with every member's size and SHA-256 (`hartonomous "
    "import ARCHIVE` checks it before importing anything). Admin keys only.",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The archive",
            "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}},
        },
        **documented(401, 403, 429, 503, 504),
    },
)
async def export(gw: GatewayDep, principal: Admin) -> StreamingResponse:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"hartonomous-export-{principal.tenant_id}-{stamp}.tar"
    return StreamingResponse(
        export_tenant(gw.peers, principal.tenant_id),
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
