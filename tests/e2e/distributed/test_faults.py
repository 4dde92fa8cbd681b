"""Faults injected into the distributed topology under load (`make test-faults`): one replica of
every service SIGKILLed and restarted in turn, the Kafka broker stopped for 20 s, PostgreSQL for
10 s, Neo4j for 30 s, and Kafka frozen for 20 s (a partition). A bounded loop of ingests and
searches runs through a gateway the whole time and records every answer. During a fault the
gateway answers, or says 503 with Retry-After: never a hang, never a 500. After each, the
platform recovers by itself (only the killed process is started again, as Kubernetes would)
within a time measured here; at the end every acknowledged ingest is in the catalog, found in
search on both replicas, in the graph (`audit verify`) and billed exactly once (`billing
reconcile`, one usage record each).

The table of faults is printed and written to faults.json in the test's temporary directory."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import httpx
import pytest

from tests.support.cluster import Cluster, eventually, running_cluster

pytestmark = [pytest.mark.faults, pytest.mark.timeout(2400)]

REQUEST_TIMEOUT_S = 60.0  # no answer within a minute is a hang
RECOVERY_TIMEOUT_S = 240.0
PROVENANCE = "provenance-1"
SERVICES = (
    "gateway-1",
    "search-1",
    "inference-1",
    "ingest-1",
    PROVENANCE,
    "billing-1",
    "control-1",
    "ooda-observe-1",
    "ooda-orient-1",
    "ooda-decide-1",
    "ooda-act-1",
    "ooda-learn-1",
)


@dataclass
class Row:
    fault: str
    outcomes: dict[str, int]  # the load's answers from the fault until recovery
    restart_s: float  # the killed process (or server) started again and ready
    recovery_s: float  # from then until both gateways ingest and search again


@dataclass
class Load:
    """Ingests and searches through one gateway, one at a time, until stopped."""

    url: str
    key: str
    acked: dict[str, str] = field(default_factory=dict)  # atom id -> its unique word
    outcomes: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
            while not self.stop.is_set():
                self.sent += 1
                word = f"zqfault{self.sent:06d}x"
                text = f"Fault loop document {self.sent} carries the word {word} alone."
                created = self._call(http, "/v1/atoms", {"content": text})
                if created is not None and created.status_code == 201:
                    self.acked[created.json()["atom_id"]] = word
                self._call(http, "/v1/search", {"query": word, "mode": "sparse", "k": 3})
                time.sleep(0.2)

    def _call(self, http: httpx.Client, path: str, body: object) -> httpx.Response | None:
        try:
            reply = http.post(path, json=body)
        except httpx.TimeoutException:
            self.outcomes["hang"] += 1
            return None
        except httpx.TransportError:
            self.outcomes["refused"] += 1
            return None
        if reply.status_code < 300:
            self.outcomes["ok"] += 1
        elif reply.status_code == 503 and "retry-after" in reply.headers:
            self.outcomes["503"] += 1
        elif reply.status_code == 429:
            self.outcomes["429"] += 1  # a quota or rate limit: an answer, not a fault
        else:
            self.outcomes[f"{reply.status_code}: {reply.text[:120]}"] += 1
        return reply


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def load(cluster: Cluster) -> Iterator[Load]:
    running = Load(cluster.urls[1], cluster.key)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running
    running.stop.set()
    thread.join(timeout=REQUEST_TIMEOUT_S * 3)
    assert not thread.is_alive(), "the load loop hung"


ROWS: list[Row] = []


def _serving(cluster: Cluster, explained: str | None) -> Callable[[], bool]:
    """Both gateways take an ingest, answer a search and explain `explained` (a document
    acknowledged before the fault: in the graph by now) again."""

    def probe() -> bool:
        headers = {"Authorization": f"Bearer {cluster.key}"}
        for url in cluster.urls:
            try:
                with httpx.Client(base_url=url, headers=headers, timeout=10) as http:
                    body = {"content": f"recovery probe {time.monotonic_ns()}"}
                    if http.post("/v1/atoms", json=body).status_code != 201:
                        return False
                    query = {"query": "recovery probe", "mode": "sparse", "k": 1}
                    if http.post("/v1/search", json=query).status_code != 200:
                        return False
                    if explained and http.get(f"/v1/provenance/{explained}/explain").is_error:
                        return False
            except httpx.HTTPError:
                return False
        return True

    return probe


def _fault(
    cluster: Cluster, load: Load, name: str, inject: Callable[[], None], heal: Callable[[], None]
) -> None:
    before = Counter(load.outcomes)
    explained = next(iter(load.acked), None)
    inject()
    restarting = time.monotonic()
    heal()
    healed = time.monotonic()
    eventually(_serving(cluster, explained), timeout=RECOVERY_TIMEOUT_S)
    recovery = time.monotonic() - healed
    time.sleep(2)
    during = load.outcomes - before
    ROWS.append(Row(name, dict(during), round(healed - restarting, 1), round(recovery, 1)))
    bad = {k: v for k, v in during.items() if k not in ("ok", "503", "429")}
    assert not bad, f"{name}: answers that are neither results nor a 503: {bad}"


def _restart(cluster: Cluster) -> Callable[[], None]:
    def heal() -> None:
        started = cluster.script("cluster.sh", "up")  # starts only what is not running
        assert started.returncode == 0, started.stderr[-4000:]

    return heal


@pytest.mark.parametrize("process", SERVICES)
def test_a_killed_replica_is_restarted_and_nothing_is_lost(
    cluster: Cluster, load: Load, process: str
) -> None:
    time.sleep(3)  # some load before the fault
    _fault(cluster, load, f"SIGKILL {process}", lambda: cluster.kill(process), _restart(cluster))


@pytest.mark.parametrize(
    ("server", "seconds"), [("kafka.sh", 20), ("postgres.sh", 10), ("neo4j.sh", 30)]
)
def test_a_stopped_server_comes_back_and_nothing_is_lost(
    cluster: Cluster, load: Load, server: str, seconds: int
) -> None:
    time.sleep(3)

    def outage() -> None:
        stopped = cluster.script(server, "down")
        assert stopped.returncode == 0, stopped.stderr
        time.sleep(seconds)

    def start() -> None:
        started = cluster.script(server, "up")
        assert started.returncode == 0, started.stderr[-4000:]

    _fault(cluster, load, f"{server.removesuffix('.sh')} stopped {seconds} s", outage, start)


def test_a_partitioned_broker_is_waited_out_and_nothing_is_lost(
    cluster: Cluster, load: Load
) -> None:
    """Kafka frozen (SIGSTOP) for 20 s: every connection stays open and nothing answers, which
    is what a network partition between the services and the broker looks like to them (a
    stopped broker refuses connections at once instead)."""
    time.sleep(3)
    broker = int((cluster.dir / "kafka" / "kafka.pid").read_text())

    def partition() -> None:
        os.kill(broker, signal.SIGSTOP)
        time.sleep(20)

    _fault(
        cluster, load, "kafka partitioned 20 s", partition, lambda: os.kill(broker, signal.SIGCONT)
    )


def test_every_acknowledged_ingest_is_stored_found_explained_and_billed_once(
    cluster: Cluster, load: Load, capsys: pytest.CaptureFixture[str]
) -> None:
    load.stop.set()
    assert len(load.acked) > 50, load.outcomes
    headers = {"Authorization": f"Bearer {cluster.key}"}
    with httpx.Client(base_url=cluster.urls[0], headers=headers, timeout=60) as http:
        for atom_id in load.acked:
            assert http.get(f"/v1/atoms/{atom_id}").status_code == 200, atom_id

        def all_found() -> bool:
            # Twice each: the gateway balances over both search replicas.
            for atom_id, word in load.acked.items():
                for _ in range(2):
                    reply = http.post("/v1/search", json={"query": word, "mode": "sparse"})
                    if atom_id not in [r["document_id"] for r in reply.json()["results"]]:
                        return False
            return True

        eventually(all_found, timeout=300, every=5)

    port = str(cluster.grpc_port(PROVENANCE))
    audit = cluster.cli("audit", "verify", "--grpc-port", port)
    assert audit.returncode == 0 and audit.stdout.splitlines()[-1].startswith("OK"), audit.stdout
    reconciled = cluster.cli("billing", "reconcile")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    usage = cluster.cli("replay", "--topic", "usage", "--json")
    assert usage.returncode == 0, usage.stderr
    payloads = [json.loads(line)["payload"] for line in usage.stdout.splitlines()]
    billed = Counter(p["resource_id"] for p in payloads if p["operation"] == "ingest")
    assert {atom_id: billed[atom_id] for atom_id in load.acked} == dict.fromkeys(load.acked, 1)

    table = cluster.dir.parent / "faults.json"
    table.write_text(json.dumps([asdict(r) for r in ROWS], indent=2))
    with capsys.disabled():
        print(f"\nfaults ({len(load.acked)} acknowledged ingests, {load.sent} rounds): {table}")
        for row in ROWS:
            print(
                f"  {row.fault:<24} restarted in {row.restart_s:>5.1f} s,"
                f" serving {row.recovery_s:>4.1f} s later  {row.outcomes}"
            )
