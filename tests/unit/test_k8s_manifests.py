"""deploy/k8s as a cluster would get it: both overlays built with a real (pinned) kustomize,
every object checked against the Kubernetes OpenAPI schemas, and the manifests held to the
code's own lists (services, settings, ports, peers, topics) so neither can drift alone. Then
what production needs: requests on every container, and network policies that leave only the
gateway's HTTP port open to the rest of the cluster.

The first run builds kustomize with Go (about a minute, cached in ~/.cache/hartonomous/bin,
see tests/support/kustomize.py); later runs take a second per overlay."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hartonomous.eventlog.topics import platform_topics
from hartonomous.runtime.peers import peer_address
from hartonomous.runtime.service import ENTRY_POINT_GROUP
from hartonomous.settings import Settings, _env_name
from services.gateway.clients import _STUBS as GATEWAY_PEERS
from services.gateway.config import GatewayConfig
from tests.support import kustomize

Manifest = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
README = K8S / "README.md"
OVERLAYS = ("dev", "prod")
# The floor: kubelet-native gRPC probes (grpc-probes.yaml) are GA from 1.27. The ceiling: the
# newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.27", kubernetes_validate.latest_version())
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# Read by boto3's credential chain for the S3 blob store (hartonomous/blobs/s3.py), not by us.
THIRD_PARTY_ENV = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
}
ANY_ADDRESS = "0.0.0.0"
PART_OF = {"app.kubernetes.io/part-of": "hartonomous"}


@dataclass(frozen=True)
class Build:
    overlay: str
    objects: list[Manifest]

    def of(self, kind: str) -> list[Manifest]:
        return [o for o in self.objects if o["kind"] == kind]

    @property
    def namespace(self) -> str:
        (namespace,) = {o["metadata"]["namespace"] for o in self.objects}
        return str(namespace)

    @property
    def deployments(self) -> dict[str, Manifest]:
        return {d["metadata"]["name"]: d for d in self.of("Deployment")}

    @property
    def config(self) -> dict[str, str]:
        """The generated ConfigMap's data (its name carries a content hash)."""
        (config,) = [
            c
            for c in self.of("ConfigMap")
            if c["metadata"]["name"].startswith("hartonomous-config-")
        ]
        return dict(config["data"])

    def env(self, deployment: Manifest) -> dict[str, str]:
        """The `app` container's environment as a pod sees it (the Secret left out)."""
        container = app(deployment)
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                (data,) = [
                    c["data"]
                    for c in self.of("ConfigMap")
                    if c["metadata"]["name"] == source["configMapRef"]["name"]
                ]
                env.update(data)
        env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        return env

    def settings(self, deployment: Manifest) -> Settings:
        """What the code makes of that environment: its own parsing, not ours."""
        return Settings.from_env(self.env(deployment))


@pytest.fixture(scope="module", params=OVERLAYS)
def build(request: pytest.FixtureRequest) -> Build:
    overlay = str(request.param)
    try:
        text = kustomize.build(K8S / "overlays" / overlay)
    except kustomize.KustomizeUnavailable as exc:
        # Never a skip: unchecked manifests would pass unnoticed.
        pytest.fail(str(exc), pytrace=False)
    return Build(overlay, [o for o in yaml.safe_load_all(text) if o])


def app(deployment: Manifest) -> Manifest:
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"
    ]
    return dict(container)


def pod_specs(build: Build) -> Iterator[tuple[str, Manifest]]:
    for o in build.objects:
        if o["kind"] not in WORKLOADS:
            continue
        spec = o["spec"]
        if o["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        yield f"{o['kind']}/{o['metadata']['name']}", spec["template"]["spec"]


def schema_errors(obj: Manifest) -> list[str]:
    name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{name} (Kubernetes {version}) {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{name}: {exc.message}")
    return errors


# --- the objects are what the API server accepts ----------------------------------------------


def test_every_object_matches_the_kubernetes_schemas(build: Build) -> None:
    assert len(build.objects) > 20, build.objects
    errors = [error for obj in build.objects for error in schema_errors(obj)]
    assert not errors, "\n".join(errors)


def test_the_example_secret_matches_the_schemas() -> None:
    (secret,) = list(yaml.safe_load_all((K8S / "base" / "secret.example.yaml").read_text()))
    assert not schema_errors(secret)


# --- the manifests and the code agree ---------------------------------------------------------


def test_every_service_runs_as_its_own_deployment(build: Build) -> None:
    """One Deployment per entry in the services group (what `hartonomous serve` accepts),
    named after it and running exactly it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    services = set(pyproject["project"]["entry-points"][ENTRY_POINT_GROUP])
    served = {name: app(d)["args"] for name, d in build.deployments.items()}
    assert served == {name: ["serve", name] for name in services}


def test_every_environment_variable_is_one_the_code_reads(build: Build) -> None:
    named = set(build.config)
    for deployment in build.deployments.values():
        named |= {e["name"] for e in app(deployment).get("env", [])}
    # The Secret's keys: the example and the commands the README gives.
    secret = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    named |= set(secret["stringData"])
    named |= set(re.findall(r"--from-literal=(\w+)=", README.read_text()))
    unknown = {name for name in named if not read_by_the_code(name)}
    assert not unknown, f"set in deploy/k8s but read by no code: {sorted(unknown)}"


def read_by_the_code(name: str) -> bool:
    if name in THIRD_PARTY_ENV:
        return True
    if name in {_env_name(f.name) for f in fields(Settings)}:
        return True
    if name in {f"HARTONOMOUS_GATEWAY_{f.name.upper()}" for f in fields(GatewayConfig)}:
        return True
    # A peer's address: the code's own lookup finds the value under this name.
    return any(
        peer_address(Settings(), peer, {name: "probe:1"}) == "probe:1" for peer in GATEWAY_PEERS
    )


def test_the_settings_parse_and_listen_beyond_loopback(build: Build) -> None:
    for name, deployment in build.deployments.items():
        env = build.env(deployment)
        settings = Settings.from_env(env)  # raises on a value the code cannot read
        GatewayConfig.from_env(env)
        # Probes, Services and peers come from other addresses than the pod's loopback; the
        # metrics server binds grpc_host too.
        assert (settings.grpc_host, settings.http_host) == (ANY_ADDRESS, ANY_ADDRESS), name


def test_container_ports_and_probes_are_the_ones_the_code_listens_on(build: Build) -> None:
    for name, deployment in build.deployments.items():
        settings = build.settings(deployment)
        container = app(deployment)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        expected = {"grpc": settings.grpc_port, "metrics": settings.metrics_port}
        if name == "gateway":
            expected["http"] = settings.http_port
        assert ports == expected, name
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(settings.metrics_port), name
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container[kind]
            if "grpc" in probe:
                assert probe["grpc"]["port"] == settings.grpc_port, (name, kind)
            else:
                port = probe["httpGet"]["port"]
                assert ports.get(port, port) == settings.http_port, (name, kind)


def test_every_peer_address_reaches_that_service(build: Build) -> None:
    """Each peer the code dials has an address in the config (unset, a pod would dial itself),
    naming a Service whose port leads to a pod's gRPC port; dns:/// (round_robin over every
    pod) needs a headless Service."""
    services = {s["metadata"]["name"]: s for s in build.of("Service")}
    gateway_env = build.env(build.deployments["gateway"])
    for peer in GATEWAY_PEERS:
        address = peer_address(Settings.from_env(gateway_env), peer, gateway_env)
        assert address != peer_address(Settings.from_env(gateway_env), peer, {}), peer
        found = re.fullmatch(r"(dns:///)?([a-z0-9-]+):(\d+)", address)
        assert found, (peer, address)
        scheme, host_name, port = found.group(1), found.group(2), int(found.group(3))
        assert host_name in services, f"{peer}: {address} names no Service"
        service = services[host_name]
        if scheme:
            assert service["spec"].get("clusterIP") == "None", host_name
        (service_port,) = [p for p in service["spec"]["ports"] if p["port"] == port]
        (deployment,) = selected(build, service["spec"]["selector"])
        container_ports = {p["name"]: p["containerPort"] for p in app(deployment)["ports"]}
        target = service_port["targetPort"]
        assert container_ports.get(target, target) == build.settings(deployment).grpc_port


def test_services_autoscalers_and_budgets_point_at_deployments(build: Build) -> None:
    for service in build.of("Service"):
        (deployment,) = selected(build, service["spec"]["selector"])
        names = {p["name"] for p in app(deployment)["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (service["metadata"]["name"], port)
    for budget in build.of("PodDisruptionBudget"):
        assert selected(build, budget["spec"]["selector"]["matchLabels"]), budget
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in build.of("HorizontalPodAutoscaler")}
    assert scaled <= set(build.deployments)
    # The loop's stages keep state in memory: two of one stage would both act (ooda.yaml).
    for name, deployment in build.deployments.items():
        if name.startswith("ooda-"):
            assert name not in scaled, name
            assert deployment["spec"]["replicas"] == 1, name
            assert deployment["spec"]["strategy"]["type"] == "Recreate", name


def selected(build: Build, selector: Mapping[str, str]) -> list[Manifest]:
    return [
        d
        for d in build.deployments.values()
        if selects({"matchLabels": selector}, d["spec"]["template"]["metadata"]["labels"])
    ]


def test_what_the_code_writes_is_writable(build: Build) -> None:
    """The root filesystem is read-only: the data dir and /tmp (embedded Postgres' runtime
    dir, spooled uploads) must be volumes."""
    for name, deployment in build.deployments.items():
        container = app(deployment)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        mounts = [Path(m["mountPath"]) for m in container["volumeMounts"]]
        for path in (build.settings(deployment).data_dir, Path("/tmp")):
            assert any(path.is_relative_to(m) for m in mounts), (name, path)


def test_a_job_creates_the_topics_and_the_services_only_check_for_them(build: Build) -> None:
    """The services' Kafka principal needs no permission to create topics: every service is
    set to require them (host.run then only checks), and the Job `topics` creates them with
    the services' own settings (`hartonomous topics --create`: platform_topics). The README's
    table, what an operator creates or grants by hand, is the code's list."""
    for name, deployment in build.deployments.items():
        assert build.settings(deployment).topic_provisioning == "require", name
    (job,) = build.of("Job")
    assert app(job)["args"] == ["topics", "--create"]
    assert build.env(job) == build.env(build.deployments["ingest"])
    section = README.read_text().split("\n## Topics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z.]+)` \| (\d+) \| `([a-z.]+)` \|$", section, re.MULTILINE)
    listed = {(name, int(partitions)) for name, partitions, _ in rows}
    listed |= {(dlq, 1) for _, _, dlq in rows}
    assert listed == {(t.name, t.partitions) for t in platform_topics()}


# --- what production needs ---------------------------------------------------------------------


def test_every_container_requests_cpu_and_memory(build: Build) -> None:
    """Requests place pods and are what the autoscalers' 70 % is of; a memory limit keeps one
    leaking pod from starving its node."""
    for name, spec in pod_specs(build):
        for container in spec["containers"] + spec.get("initContainers", []):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), (name, resources)
            assert "memory" in resources.get("limits", {}), (name, resources)


@dataclass(frozen=True)
class Source:
    """Where a connection comes from, as NetworkPolicy sees it."""

    name: str
    namespace: str
    pod_labels: Mapping[str, str]

    @property
    def namespace_labels(self) -> Mapping[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace}


def test_only_the_gateway_is_reachable_from_outside(build: Build) -> None:
    """Every port of every pod, from the platform's own pods, a neighbour in the namespace
    (Kafka, say), a pod elsewhere that copies the gateway's labels, and Prometheus."""
    policies = build.of("NetworkPolicy")
    ns = build.namespace
    gateway_labels = build.deployments["gateway"]["spec"]["template"]["metadata"]["labels"]
    outsiders = [
        Source("neighbour", ns, {"app.kubernetes.io/name": "kafka"}),
        Source("elsewhere", "elsewhere", gateway_labels),
    ]
    prometheus = Source("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
    platform = [
        Source(name, ns, d["spec"]["template"]["metadata"]["labels"])
        for name, d in build.deployments.items()
    ]
    for name, deployment in build.deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert PART_OF.items() <= labels.items(), name
        for port in app(deployment)["ports"]:
            public = name == "gateway" and port["name"] == "http"

            def reaches(source: Source, port: Manifest = port, labels: Any = labels) -> bool:
                return admitted(policies, ns, labels, port, source)

            if port["name"] == "grpc":
                refused = [s.name for s in platform if not reaches(s)]
                assert not refused, f"{name}:{port['name']} refuses platform pods {refused}"
            for source in outsiders:
                assert reaches(source) == public, (name, port["name"], source.name)
            scraped = public or port["name"] == "metrics"
            assert reaches(prometheus) == scraped, (name, port["name"])


def admitted(
    policies: list[Manifest], namespace: str, pod: Mapping[str, str], port: Manifest, source: Source
) -> bool:
    """NetworkPolicy ingress semantics: a pod no policy selects takes everything; a selected
    pod takes what any rule of any selecting policy allows."""
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == namespace
        and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], pod)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            if not port_matches(rule.get("ports"), port):
                continue
            peers = rule.get("from")
            if not peers or any(peer_matches(peer, namespace, source) for peer in peers):
                return True
    return False


def port_matches(ports: list[Manifest] | None, port: Manifest) -> bool:
    if not ports:
        return True
    for allowed in ports:
        if allowed.get("protocol", "TCP") != port.get("protocol", "TCP"):
            continue
        wanted = allowed.get("port")
        if wanted is None or wanted == port["name"] or wanted == port["containerPort"]:
            return True
        end = allowed.get("endPort")
        if isinstance(wanted, int) and end is not None and wanted <= port["containerPort"] <= end:
            return True
    return False


def peer_matches(peer: Manifest, namespace: str, source: Source) -> bool:
    if "ipBlock" in peer:
        return True  # by address: assume it may cover anyone, so the check stays strict
    if "namespaceSelector" in peer:
        in_namespace = selects(peer["namespaceSelector"], source.namespace_labels)
    else:
        in_namespace = source.namespace == namespace
    pods = peer.get("podSelector")
    return in_namespace and (pods is None or selects(pods, source.pod_labels))


def selects(selector: Manifest, labels: Mapping[str, str]) -> bool:
    """A LabelSelector: every matchLabels pair and every matchExpressions term holds."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for term in selector.get("matchExpressions", []):
        key, values = term["key"], term.get("values", [])
        holds = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[term["operator"]]
        if not holds:
            return False
    return True
