"""The console's session: the API key a browser signed in with, held in an HttpOnly,
SameSite=Strict cookie (never in a URL or in storage a script can read), and the CSRF token
every state-changing call made with that cookie carries in X-CSRF-Token. The token is an HMAC
of the key: any gateway replica checks it without shared state, and another site's page, which
can read neither the cookie nor the console's answers, cannot forge it."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request, Response

from services.gateway.problems import ProblemError

COOKIE = "hartonomous_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_PURPOSE = b"hartonomous console csrf token"


def csrf_token(key: str) -> str:
    return hmac.new(key.encode(), _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def session_key(request: Request) -> str | None:
    """The key of the signed-in browser, with its CSRF token checked on a state-changing call."""
    key = request.cookies.get(COOKIE)
    if not key:
        return None
    if request.method not in SAFE_METHODS:
        presented = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(presented.encode(), csrf_token(key).encode()):
            raise ProblemError(
                403,
                f"a call made with the console's session needs its {CSRF_HEADER} header",
                kind="csrf",
            )
    return key


def open_session(request: Request, response: Response, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def close_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
    )
