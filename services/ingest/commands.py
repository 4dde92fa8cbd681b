"""`hartonomous models ingest FILE --name NAME [--version V] [--with PATH ...] | show NAME
[--as-of T] | promote NAME VERSION [--reason R] | diff NAME FROM TO | download NAME VERSION
--output FILE`: models as tensor atoms through the ingest service's gRPC API
(HARTONOMOUS_INGEST_ADDR names it, or this machine's gRPC port), for one tenant (`--tenant`;
default: the system tenant that holds the platform's own models).

`ingest` prints the version's manifest address alone on the last line of stdout; progress
and chatter go to stderr; `--json` prints replies as JSON."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from hartonomous.commands import Command, utc_time
from hartonomous.modelfiles import SYSTEM_TENANT
from hartonomous.runtime.peers import peer_channel
from hartonomous.settings import Settings
from hartonomous.v1 import ingest_pb2 as pb
from hartonomous.v1 import ingest_pb2_grpc

TIMEOUT_S = 30.0
USAGE_ERROR = 2
PIECE = 1 << 20
PROGRESS_EVERY_S = 2.0
_CALLERS_MISTAKES = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)
_ARGS = {"ingest": 1, "show": 1, "promote": 2, "diff": 3, "download": 2}


class ModelsCommand(Command):
    name = "models"
    help = "models as tensor atoms: ingest a file, show, promote, diff, download a version"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=list(_ARGS))
        parser.add_argument("args", nargs="*", metavar="ARG", help="see `hartonomous models`")
        parser.add_argument("--name", default="", help="ingest: the model's name")
        parser.add_argument("--version", default="", help="ingest: the label (default: vN+1)")
        parser.add_argument(
            "--with",
            dest="companions",
            action="append",
            default=[],
            metavar="PATH",
            help="ingest: a companion file (config, tokenizer), relative to FILE's folder",
        )
        parser.add_argument("--tenant", default=SYSTEM_TENANT, help="whose models")
        parser.add_argument("--as-of", type=utc_time, help="show: the moment (ISO 8601)")
        parser.add_argument("--reason", default="", help="promote: why")
        parser.add_argument("--output", type=Path, help="download: where to write the file")
        parser.add_argument("--json", action="store_true", help="print JSON")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        problem = _usage(args)
        if problem:
            print(f"usage: hartonomous models {problem}", file=sys.stderr)
            return USAGE_ERROR
        async with peer_channel(settings, "ingest") as channel:
            stub: Any = ingest_pb2_grpc.IngestStub(channel)  # type: ignore[no-untyped-call]
            try:
                return await _ACTIONS[args.action](stub, args)
            except grpc.aio.AioRpcError as exc:
                print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
                return USAGE_ERROR if exc.code() in _CALLERS_MISTAKES else 1


def _usage(args: argparse.Namespace) -> str | None:
    forms = {
        "ingest": "ingest FILE --name NAME [--version V] [--with PATH ...]",
        "show": "show NAME [--as-of TIME]",
        "promote": "promote NAME VERSION [--reason R]",
        "diff": "diff NAME FROM TO",
        "download": "download NAME VERSION --output FILE",
    }
    wrong = len(args.args) != _ARGS[args.action]
    wrong |= args.action == "ingest" and not args.name
    wrong |= args.action == "download" and args.output is None
    return forms[args.action] if wrong else None


async def _ingest(stub: Any, args: argparse.Namespace) -> int:
    path = Path(args.args[0])
    files = {}
    for companion in args.companions:
        companion_header = pb.IngestHeader(
            tenant_id=args.tenant, modality="model", source_uri=f"{args.name}/{companion}"
        )
        upload = _atom_upload(companion_header, path.parent / companion)
        atom = await stub.IngestAtom(upload, timeout=TIMEOUT_S)
        files[companion] = atom.atom_id
    version = args.version or await _next_version(stub, args.tenant, args.name)
    header = pb.ModelHeader(
        tenant_id=args.tenant, name=args.name, version=version, source_uri=path.name, files=files
    )
    started = time.monotonic()
    reply = await stub.IngestModel(_model_upload(header, path))
    seconds = time.monotonic() - started
    if args.json:
        print(json.dumps(_dict(reply), indent=2))
    else:
        print(
            f"{reply.name} {reply.version}: {reply.tensors} tensors, {reply.new_tensors} new"
            f" ({reply.new_bytes / 2**20:.1f} MiB stored) in {seconds:.1f} s",
            file=sys.stderr,
        )
    print(reply.manifest_atom_id)
    return 0


async def _next_version(stub: Any, tenant: str, name: str) -> str:
    try:
        model = await stub.GetModel(
            pb.GetModelRequest(tenant_id=tenant, name=name), timeout=TIMEOUT_S
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return "v1"
    return f"v{len(model.versions) + 1}"


async def _atom_upload(header: pb.IngestHeader, path: Path) -> AsyncIterator[pb.IngestRequest]:
    yield pb.IngestRequest(header=header)
    async for piece in _pieces(path, progress=False):
        yield pb.IngestRequest(data=piece)


async def _model_upload(header: pb.ModelHeader, path: Path) -> AsyncIterator[pb.IngestModelRequest]:
    yield pb.IngestModelRequest(header=header)
    async for piece in _pieces(path, progress=True):
        yield pb.IngestModelRequest(data=piece)


async def _pieces(path: Path, progress: bool) -> AsyncIterator[bytes]:
    """The file in pieces, with progress on stderr for a long upload."""
    size = await asyncio.to_thread(lambda: path.stat().st_size)
    sent, said = 0, time.monotonic()
    with path.open("rb") as f:
        while piece := await asyncio.to_thread(f.read, PIECE):
            sent += len(piece)
            if progress and time.monotonic() - said > PROGRESS_EVERY_S:
                said = time.monotonic()
                print(f"  sent {sent / 2**20:.0f} of {size / 2**20:.0f} MiB", file=sys.stderr)
            yield piece


async def _show(stub: Any, args: argparse.Namespace) -> int:
    request = pb.GetModelRequest(tenant_id=args.tenant, name=args.args[0])
    if args.as_of is not None:
        request.as_of.FromDatetime(args.as_of)
    model = await stub.GetModel(request, timeout=TIMEOUT_S)
    if args.json:
        print(json.dumps(_dict(model), indent=2))
        return 0
    print(f"{model.name} as of {model.as_of.ToJsonString()}: live {model.live_version or '-'}")
    for v in model.versions:
        print(
            f"  {v.version:<12} {v.manifest_atom_id[:16]}  {v.format:<11} {v.tensors} tensors,"
            f" {v.new_tensors} new ({v.new_bytes / 2**20:.1f} MiB)"
        )
    for p in model.promotions:
        why = f"  ({p.reason})" if p.reason else ""
        print(f"  promoted {p.version} at {p.promoted_at.ToJsonString()}{why}")
    return 0


async def _promote(stub: Any, args: argparse.Namespace) -> int:
    name, version = args.args
    request = pb.PromoteModelVersionRequest(
        tenant_id=args.tenant, name=name, version=version, reason=args.reason
    )
    model = await stub.PromoteModelVersion(request, timeout=TIMEOUT_S)
    print(f"{name}: live version", file=sys.stderr)
    print(model.live_version)
    return 0


async def _diff(stub: Any, args: argparse.Namespace) -> int:
    name, old, new = args.args
    request = pb.DiffModelVersionsRequest(
        tenant_id=args.tenant, name=name, from_version=old, to_version=new
    )
    diff = await stub.DiffModelVersions(request, timeout=TIMEOUT_S)
    if args.json:
        print(json.dumps(_dict(diff), indent=2))
        return 0
    for label, changes in (("+", diff.added), ("-", diff.removed), ("~", diff.changed)):
        for c in changes:
            print(f"{label} {c.tensor}")
    print(f"{diff.unchanged_tensors} tensors unchanged ({diff.unchanged_bytes / 2**20:.1f} MiB)")
    return 0


async def _download(stub: Any, args: argparse.Namespace) -> int:
    name, version = args.args
    request = pb.GetModelVersionRequest(tenant_id=args.tenant, name=name, version=version)
    found = await stub.GetModelVersion(request, timeout=TIMEOUT_S)
    digest = hashlib.sha256()
    partial = args.output.with_name(args.output.name + ".partial")
    with partial.open("wb") as out:
        async for message in stub.ReadModelFile(request):
            digest.update(message.data)
            out.write(message.data)
    if digest.hexdigest() != found.source_sha256:
        partial.unlink()
        print("the downloaded file does not match the one ingested", file=sys.stderr)
        return 1
    partial.replace(args.output)
    print(f"{args.output}: sha256 {found.source_sha256}", file=sys.stderr)
    print(args.output)
    return 0


def _dict(message: Message) -> dict[str, Any]:
    found: dict[str, Any] = MessageToDict(message, preserving_proto_field_name=True)
    return found


_ACTIONS = {
    "ingest": _ingest,
    "show": _show,
    "promote": _promote,
    "diff": _diff,
    "download": _download,
}

command = ModelsCommand()
