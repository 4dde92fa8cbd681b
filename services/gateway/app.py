"""The FastAPI application: routes, problem details for every error, body limits, telemetry,
and an OpenAPI document that describes every response, errors included."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.telemetry import TelemetryConfig

from services.gateway import problems
from services.gateway.deps import Gateway
from services.gateway.limits import BodyLimit
from services.gateway.problems import CatchAll, Problem
from services.gateway.routes import (
    admin,
    atoms,
    billing,
    config,
    console,
    embeddings,
    export,
    generation,
    health,
    models,
    ooda,
    provenance,
    search,
    tenants,
)
from services.gateway.telemetry import RequestTelemetry

DESCRIPTION = """The public API of Hartonomous: ingest content, search it, embed text, and see
what it costs. Authenticate with `Authorization: Bearer <API key>`; every error is an RFC 7807
`application/problem+json` document."""


def create_app(gateway: Gateway) -> FastAPI:
    # RequestTelemetry below is the one server span, metric and access log per request.
    # FastAPI's own telemetry switches itself on once an OpenTelemetry SDK is installed (we
    # install one for trace ids) and would add a second server span plus spans for
    # dependencies, the endpoint and serialization: ~15% of the gateway's time per request.
    no_native_telemetry: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(
        title="Hartonomous",
        version="1",
        description=DESCRIPTION,
        telemetry=no_native_telemetry,
    )
    app.state.gateway = gateway
    routers = (
        atoms,
        models,
        search,
        embeddings,
        generation,
        provenance,
        billing,
        export,
        admin,
        tenants,
        config,
        ooda,
        health,
        console,
    )
    for module in routers:
        app.include_router(module.router)
    app.include_router(ooda.admin_router)
    app.include_router(generation.admin_router)
    problems.install(app)
    # Added innermost first: telemetry sees everything, the 500 fallback and the limits
    # included; CORS (off unless origins are configured) answers preflights before routing.
    if gateway.config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(gateway.config.cors_origins),
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Authorization", "Content-Type", "traceparent"],
        )
    app.add_middleware(BodyLimit, config=gateway.config)
    app.add_middleware(CatchAll)
    app.add_middleware(RequestTelemetry, recorder=gateway.telemetry)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the Problem schema the error responses refer to by $ref."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(problem.pop("$defs", {}))
        schemas["Problem"] = problem
        app.openapi_schema = document
    return app.openapi_schema
