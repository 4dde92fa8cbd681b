"""A pinned kustomize binary for the manifest tests, built once from its Go module and cached.

The binary lives in `~/.cache/hartonomous/bin/kustomize-<version>` ($XDG_CACHE_HOME honoured):
the version is in the name, so bumping the pin builds a new one instead of reusing a stale
binary. Building needs Go and the Go module proxy; without Go this fails loudly rather than
letting the manifest checks skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# The newest v5 release that builds with Go 1.26: v5.8.2 needs go >= 1.26.0, v5.8.3 needs 1.27.
KUSTOMIZE_VERSION = "v5.8.2"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
# Where the Go toolchain is when it is not on PATH (the official tarball's location).
_GO_FALLBACK = Path("/usr/local/go/bin/go")
# Under pytest-timeout's 300 s, so a stuck download fails with this module's message.
_BUILD_TIMEOUT_S = 240.0


class KustomizeUnavailable(RuntimeError):
    """kustomize is not cached and cannot be built here."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hartonomous" / "bin"


def kustomize() -> Path:
    """The pinned kustomize binary, built with `go install` the first time it is needed."""
    binary = cache_dir() / f"kustomize-{KUSTOMIZE_VERSION}"
    if _usable(binary):
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time (pytest-xdist workers, parallel CI jobs on one cache); the others
    # wait here and then find the binary.
    with (binary.parent / ".kustomize.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _usable(binary):
                _build(binary)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return binary


def _usable(binary: Path) -> bool:
    return binary.is_file() and os.access(binary, os.X_OK)


def _go() -> Path:
    found = shutil.which("go")
    if found:
        return Path(found)
    if _usable(_GO_FALLBACK):
        return _GO_FALLBACK
    raise KustomizeUnavailable(
        f"kustomize {KUSTOMIZE_VERSION} is not cached at {cache_dir()} and Go is not installed "
        f"(no `go` on PATH, none at {_GO_FALLBACK}): install Go, or put a kustomize "
        f"{KUSTOMIZE_VERSION} binary at {cache_dir() / f'kustomize-{KUSTOMIZE_VERSION}'}"
    )


def _build(binary: Path) -> None:
    go = _go()
    # Built into a private directory, then renamed: a reader never sees a half-written file.
    with tempfile.TemporaryDirectory(dir=binary.parent, prefix=".build-") as gobin:
        env = {**os.environ, "GOBIN": gobin, "CGO_ENABLED": "0"}
        try:
            subprocess.run(
                [str(go), "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
                timeout=_BUILD_TIMEOUT_S,
            )
        except subprocess.CalledProcessError as exc:
            raise KustomizeUnavailable(
                f"`go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}` failed "
                f"(exit {exc.returncode}):\n{exc.stderr}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise KustomizeUnavailable(
                f"`go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}` took over "
                f"{_BUILD_TIMEOUT_S:.0f} s"
            ) from exc
        os.replace(Path(gobin) / "kustomize", binary)


def build(overlay: Path) -> str:
    """`kustomize build <overlay>`: the rendered multi-document YAML."""
    done = subprocess.run(
        [str(kustomize()), "build", str(overlay)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"kustomize build {overlay} failed:\n{done.stderr}")
    return done.stdout
