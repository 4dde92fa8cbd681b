"""`hartonomous audit` as an operator runs it, against `hartonomous serve provenance` on the
embedded defaults: verify passes after normal operation (asking the running service for the
live side), and fails once a node of the live graph file is edited behind the log's back."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path

import grpc
import ladybug

from hartonomous.commands import ENTRY_POINT_GROUP as COMMANDS_GROUP
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.events import AvroCodec
from hartonomous.postgres import embedded_postgres_url
from hartonomous.runtime.service import ENTRY_POINT_GROUP as SERVICES_GROUP
from hartonomous.v1 import provenance_pb2, provenance_pb2_grpc
from services.provenance.api import fingerprint_from
from services.provenance.domain import Partition
from services.provenance.graph import embedded_path
from tests.integration.provenance.conftest import settled
from tests.support.platform import CLI, REPO, free_port, wait_serving
from tests.support.provenance_flow import ingest_flow, records, reference_flow

CLI_TIMEOUT_S = 120


def hartonomous(*args: str, data_dir: Path, grpc_port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args, "--data-dir", str(data_dir), "--grpc-port", str(grpc_port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )


def serve_provenance(data_dir: Path, grpc_port: int, event_log: Path) -> subprocess.Popen[bytes]:
    """The service alone; its log goes to a file (a pipe nobody reads could fill and block it)."""
    with event_log.open("wb") as out:
        return subprocess.Popen(
            [str(CLI), "serve", "provenance", "--data-dir", str(data_dir),
             "--grpc-port", str(grpc_port), "--metrics-port", "0"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


async def append_flows(data_dir: Path) -> None:
    """What ingest and inference would append, through the platform's own embedded Postgres."""
    codec = AvroCodec()
    acme = ingest_flow("acme", "An audit replays the log and compares.", "audit.md", "req-a")
    globex = reference_flow(acme, "globex", "copy.md", "req-g")
    event_log = EmbeddedEventLog(embedded_postgres_url(data_dir / "postgres"))
    await event_log.start()
    try:
        await event_log.append_atomic(records(codec, acme.events))
        await event_log.append_atomic(records(codec, globex.events))
    finally:
        await event_log.close()


async def wait_applied(data_dir: Path, grpc_port: int) -> None:
    """The service's graph has caught up with the log (read over gRPC: the file is its own)."""
    event_log = EmbeddedEventLog(embedded_postgres_url(data_dir / "postgres"))
    await event_log.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = provenance_pb2_grpc.ProvenanceStub(channel)  # type: ignore[no-untyped-call]

            async def positions() -> dict[Partition, int]:
                reply = await stub.Fingerprint(provenance_pb2.FingerprintRequest())
                return fingerprint_from(reply).positions

            await settled(event_log, positions)
    finally:
        await event_log.close()


def tamper(data_dir: Path) -> None:
    """Edit one Atom node's size in the graph file directly, as an intruder would."""
    db = ladybug.Database(str(embedded_path(data_dir)))
    conn = ladybug.Connection(db)
    found = conn.execute("MATCH (n:Node) WHERE n.label = 'Atom' RETURN n.uid, n.data LIMIT 1")
    assert not isinstance(found, list)
    uid, data = found.get_next()
    stored = json.loads(data)
    stored["props"]["size_bytes"] = 1
    conn.execute(
        "MATCH (n:Node {uid: $uid}) SET n.data = $data", {"uid": uid, "data": json.dumps(stored)}
    )
    conn.close()
    db.close()


async def test_verify_passes_on_the_live_graph_and_fails_once_it_is_tampered_with(
    tmp_path: Path,
) -> None:
    registered = {
        (group, ep.name)
        for group in (SERVICES_GROUP, COMMANDS_GROUP)
        for ep in entry_points(group=group)
    }
    assert {(SERVICES_GROUP, "provenance"), (COMMANDS_GROUP, "audit")} <= registered, (
        "pyproject.toml must register services.provenance.service:service and .commands:command"
    )
    data_dir, port = tmp_path / "data", free_port()
    service_log = tmp_path / "provenance.log"
    platform = serve_provenance(data_dir, port, service_log)
    try:
        wait_serving(port)
        await append_flows(data_dir)
        await wait_applied(data_dir, port)

        ok = hartonomous("audit", "verify", data_dir=data_dir, grpc_port=port)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.splitlines()[-1].startswith("OK ")
        assert "the provenance service at" in ok.stderr

        now = datetime.now(UTC).isoformat()
        snapshot = hartonomous("audit", "as-of", now, "--json", data_dir=data_dir, grpc_port=port)
        assert snapshot.returncode == 0, snapshot.stderr
        graph = json.loads(snapshot.stdout)
        assert {"Tenant:acme", "Tenant:globex"} <= {n["uid"] for n in graph["nodes"]}
        empty = hartonomous("audit", "as-of", "2000-01-01", data_dir=data_dir, grpc_port=port)
        assert empty.returncode == 0 and "0 records" in empty.stdout
    finally:
        platform.send_signal(signal.SIGTERM)
        platform.wait(timeout=60)
    assert platform.returncode == 0, service_log.read_text()[-3000:]

    # The service is gone: the CLI opens the graph file itself.
    still = hartonomous("audit", "verify", data_dir=data_dir, grpc_port=port)
    assert still.returncode == 0, still.stdout + still.stderr
    assert "the graph store" in still.stderr

    tamper(data_dir)
    caught = hartonomous("audit", "verify", data_dir=data_dir, grpc_port=port)
    assert caught.returncode == 1, caught.stdout + caught.stderr
    assert caught.stdout.splitlines()[-1].startswith("MISMATCH ")
    assert "content hash" in caught.stdout
