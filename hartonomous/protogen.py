"""Generate Python gRPC stubs from proto/hartonomous/v1/*.proto into hartonomous/v1/.

Run by `make proto` (and by `make setup`); the generated modules are not committed."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

REPO = Path(__file__).resolve().parents[1]
PROTO_ROOT = REPO / "proto"


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    if not protos:
        return 0
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={REPO}",
        f"--pyi_out={REPO}",
        f"--grpc_python_out={REPO}",
        *protos,
    ]
    status = protoc.main(args)
    if status != 0:
        print(f"protoc failed ({status}) for {protos}", file=sys.stderr)
        return int(status)
    package = REPO / "hartonomous" / "v1"
    (package / "__init__.py").touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
