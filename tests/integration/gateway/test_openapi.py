"""/openapi.json describes every response, errors included, and /docs serves it."""

from __future__ import annotations

import pytest

from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
PUBLIC = {"/healthz", "/readyz", "/metrics"}


async def test_every_error_response_is_a_documented_problem(gw: Gateway) -> None:
    document = (await gw.http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert {"Problem", "FieldError"} <= set(schemas)
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape is never used
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    # 18, 4 of config, 6 of the loop, 6 of models, 4 of generation, 2 of tenant settings,
    # 1 erasure, 1 document list, 5 of tenants and keys, 1 of quotas (the console's own routes
    # are not here)
    assert len(operations) == 48
    for path, method, operation in operations:
        responses = operation["responses"]
        assert responses["default"]["content"] == PROBLEM, (path, method)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response["content"] == PROBLEM, (path, method, status)
        if path not in PUBLIC:
            assert operation["security"] == [{"HTTPBearer": []}], (path, method)
            assert "401" in responses and "429" in responses


async def test_docs_page_is_served(gw: Gateway) -> None:
    docs = await gw.http.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
