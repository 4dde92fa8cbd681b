"""What the gateway prints on stdout when it starts: the URL (and its docs and console), the
bootstrap key on the very first start only (it is stored hashed, so this is the one chance to
copy it), and a three-line curl quick start."""

from __future__ import annotations

from services.gateway.store import IssuedKey

KEY_VARIABLE = "HARTONOMOUS_KEY"


def public_url(host: str, port: int) -> str:
    """A URL a local client can use (a wildcard bind address is not one)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def banner(url: str, bootstrap: IssuedKey | None) -> str:
    auth = f'-H "Authorization: Bearer ${KEY_VARIABLE}"'
    lines = [f"Hartonomous is up at {url}  (API docs: {url}/docs, console: {url}/console/)"]
    if bootstrap is not None:
        lines += [
            f"Admin API key of tenant {bootstrap.tenant.name!r}, shown this once (store it now):",
            f"  export {KEY_VARIABLE}={bootstrap.secret_key}",
        ]
    else:
        lines += [
            f"Use the API key printed at the first start as ${KEY_VARIABLE}"
            " (another: hartonomous keys create --tenant default --role writer).",
        ]
    lines += [
        "Quick start: ingest a file, search it, see your usage:",
        f"  curl {auth} -F file=@README.md {url}/v1/atoms",
        f"  curl {auth} -H 'Content-Type: application/json' -d '{{\"query\": \"how do I run it?\"}}' {url}/v1/search",
        f"  curl {auth} {url}/v1/usage",
    ]
    return "\n".join(lines)
