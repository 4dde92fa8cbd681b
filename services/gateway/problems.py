"""RFC 7807 problem details: the one shape of every error the gateway returns, whatever raised
it (our checks, FastAPI's validation, Starlette's routing, a peer's gRPC status, a bug).
Clients get a status, a title and a safe detail; stack traces stay in the log."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry import trace
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hartonomous import postgres

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: e.g. ['body', 'input', 0]")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 7807 problem details (`application/problem+json`)."""

    type: str = Field(
        "about:blank", description="A URI naming the problem; about:blank: see the title"
    )
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="The request path")
    trace_id: str | None = Field(None, description="Finds this request in the logs and traces")
    errors: list[FieldError] | None = Field(None, description="Each invalid field (422 only)")


class ProblemError(HTTPException):
    """Raise anywhere while handling a request to answer with a problem. (An HTTPException,
    so FastAPI passes it through untouched even from inside its body reading.)"""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[FieldError] | None = None,
    ) -> None:
        super().__init__(status, detail, headers=dict(headers or {}))
        # A kind names the problem for clients that branch on it (urn:hartonomous:problem:KIND).
        self.type = f"urn:hartonomous:problem:{kind}" if kind else "about:blank"
        self.title = title or HTTPStatus(status).phrase
        self.errors = list(errors) if errors is not None else None

    def response(self, path: str) -> JSONResponse:
        span = trace.get_current_span().get_span_context()
        body = Problem(
            type=self.type,
            title=self.title,
            status=self.status_code,
            # HTTPException fills in the status phrase when there is no detail: say it once.
            detail=None if self.detail == HTTPStatus(self.status_code).phrase else self.detail,
            instance=path,
            trace_id=trace.format_trace_id(span.trace_id) if span.is_valid else None,
            errors=self.errors,
        )
        return JSONResponse(
            body.model_dump(exclude_none=True),
            status_code=self.status_code,
            headers=self.headers,
            media_type=PROBLEM_JSON,
        )


def install(app: FastAPI) -> None:
    """Route every error FastAPI and Starlette know about through Problem."""

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        if not isinstance(exc, ProblemError):  # Starlette's own: 404, 405, ...
            exc = ProblemError(exc.status_code, exc.detail, headers=exc.headers)
        return exc.response(request.url.path)

    async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # Only where, what and why: `input` would echo the caller's (maybe secret) data back.
        errors = [
            FieldError(loc=list(e.get("loc", ())), msg=str(e.get("msg", "")), type=e["type"])
            for e in exc.errors()
        ]
        problem = ProblemError(
            422, "the request is not valid; see errors", kind="invalid-request", errors=errors
        )
        return problem.response(request.url.path)

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)


RETRY_AFTER_UNAVAILABLE = "2"
"""Seconds a client waits before retrying a 503 (a peer or a store unavailable)."""


class CatchAll:
    """The last resort: an unexpected exception becomes a bare 500 problem (logged with its
    trace and trace id) instead of reaching the server, which would answer in plain text."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                logger.exception("unhandled error", extra={"path": scope["path"]})
                raise  # the status line is out: all we can do is drop the connection
            await self._problem(exc, scope["path"])(scope, receive, send)

    @staticmethod
    def _problem(exc: Exception, path: str) -> JSONResponse:
        if isinstance(exc, postgres.UNREACHABLE):  # the gateway's own database (API keys)
            logger.warning("the gateway's database is unreachable: %r", exc)
            unavailable = ProblemError(
                503,
                "the gateway's database is unreachable; retry shortly",
                kind="unavailable",
                headers={"Retry-After": RETRY_AFTER_UNAVAILABLE},
            )
            return unavailable.response(path)
        logger.exception("unhandled error", exc_info=exc, extra={"path": path})
        return ProblemError(500, "an internal error occurred").response(path)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these error statuses (and any other) as problem details."""
    content = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
    retry = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": HTTPStatus(status).phrase, "content": content}
        if status in (429, 503):
            entry["headers"] = retry
        responses[status] = entry
    responses["default"] = {"description": "Any other error", "content": content}
    return responses
