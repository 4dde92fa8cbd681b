"""The events an ingest -> chunk -> embed flow, a model's release, a generation's receipt and one
turn of the autonomous loop append, built through the kernel codec, as the provenance tests need
them: as log records to append, or as stored records to project."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hartonomous.eventlog.port import Record, StoredRecord
from hartonomous.events import AvroCodec, Envelope, Event, encode_event, new_event_id
from hartonomous.events.payloads import (
    ActionConfirmed,
    ActionFailed,
    ActionStarted,
    Alternative,
    AtomChunked,
    AtomIngested,
    AtomReferenced,
    ConfigChanged,
    DecisionMade,
    DecisionResolved,
    EmbeddingComputed,
    GaugeSample,
    Guardrail,
    HypothesesProposed,
    Hypothesis,
    InferencePerformed,
    ModelDecomposed,
    ModelVersionPromoted,
    ObservationMade,
    OperationWindow,
    OutcomeEvaluated,
    Payload,
    PriorUpdated,
    TelemetryRecorded,
    TensorAtom,
    TextChunk,
    UsageRecorded,
)
from tests.support.events import CODEC

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_VERSION = hashlib.sha256(b"minilm weights, tokenizer and config").hexdigest()
CHUNKER = "recursive/v1 max_chars=40 overlap=0"
DIM = 4


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Keyed:
    """An event with the topic and key it is appended under."""

    topic: str
    key: str
    event: Event[Payload]


@dataclass
class Flow:
    tenant: str
    document: str  # the document's atom id
    source_uri: str
    request_id: str
    chunks: list[str]  # chunk atom ids in document order
    events: list[Keyed] = field(default_factory=list)


def _usage(
    env: Envelope, tenant: str, operation: str, resource: str, unit: str = "requests", n: int = 1
) -> Event[UsageRecorded]:
    return Event(
        env.caused("UsageRecorded", env.produced_by, tenant),
        UsageRecorded(
            tenant_id=tenant,
            operation=operation,
            unit=unit,
            quantity=Decimal(f"{n}.000000000"),
            resource_id=resource,
            used_at=datetime.now(UTC),
            dimensions={"device": "cpu"},
        ),
    )


def _embedded(cause: Envelope, tenant: str, atom_id: str) -> Keyed:
    env = cause.caused("EmbeddingComputed", "inference", tenant)
    payload = EmbeddingComputed(
        atom_id=atom_id,
        tenant_id=tenant,
        model_id=MODEL_ID,
        model_version=MODEL_VERSION,
        dim=DIM,
        vector=[0.5, 0.5, 0.5, 0.5],
        normalized=True,
    )
    return Keyed("embeddings", atom_id, Event(env, payload))


def ingest_flow(tenant: str, text: str, source_uri: str, request_id: str) -> Flow:
    """AtomIngested + AtomChunked (two chunks) + usage, then an embedding per chunk and for the
    document + usage: what ingest and inference append for a new text."""
    document = sha256(text)
    half = len(text) // 2
    spans = [(0, half), (half, len(text))]
    chunk_ids = [sha256(text[a:b]) for a, b in spans]
    env = Envelope.new("AtomIngested", tenant, "ingest", correlation_id=request_id)
    ingested = Event(
        env,
        AtomIngested(
            atom_id=document,
            tenant_id=tenant,
            modality="text",
            mime_type="text/plain; charset=utf-8",
            size_bytes=len(text.encode()),
            blob_key=document,
            source_uri=source_uri,
            metadata_json='{"team": "research"}',
        ),
    )
    chunked = Event(
        env.caused("AtomChunked", "ingest"),
        AtomChunked(
            parent_atom_id=document,
            tenant_id=tenant,
            chunker=CHUNKER,
            chunks=[
                TextChunk(
                    index=i,
                    atom_id=chunk_ids[i],
                    start_char=a,
                    end_char=b,
                    start_byte=len(text[:a].encode()),
                    end_byte=len(text[:b].encode()),
                )
                for i, (a, b) in enumerate(spans)
            ],
        ),
    )
    events = [
        Keyed("atoms", document, ingested),
        Keyed("atoms", document, chunked),
        Keyed("usage", tenant, _usage(env, tenant, "ingest", document)),
        _embedded(env, tenant, document),
        *(_embedded(chunked.envelope, tenant, c) for c in chunk_ids),
        Keyed("usage", tenant, _usage(chunked.envelope, tenant, "embed", MODEL_VERSION)),
    ]
    return Flow(tenant, document, source_uri, request_id, chunk_ids, events)


def reference_flow(original: Flow, tenant: str, source_uri: str, request_id: str) -> Flow:
    """Another tenant uploads the same bytes: only AtomReferenced + usage (nothing is chunked
    or embedded again)."""
    env = Envelope.new("AtomReferenced", tenant, "ingest", correlation_id=request_id)
    referenced = Event(
        env,
        AtomReferenced(atom_id=original.document, tenant_id=tenant, source_uri=source_uri),
    )
    events = [
        Keyed("atoms", original.document, referenced),
        Keyed("usage", tenant, _usage(env, tenant, "ingest", original.document)),
    ]
    return replace(
        original, tenant=tenant, source_uri=source_uri, request_id=request_id, events=events
    )


KNOB = "inference.batch.max_wait_ms"
PLAYBOOK = "shorter-batch-wait"


@dataclass
class Cycle:
    """One turn of the loop on one knob, and a rollback of its action. Ids are the loop's own
    (each the event id of the event that made it, as the stages derive them)."""

    tenant: str
    windows: list[Keyed]  # the TelemetryRecorded windows the observation rests on
    observation: str
    chosen: str  # the decision's hypothesis
    passed_over: str  # the other candidate
    decision: str
    resolution: str  # the DecisionResolved's event id
    action: str
    change: str  # the event id of the action's ConfigChanged
    outcome: str
    prior: str  # the PriorUpdated's event id
    rollback: str
    rollback_change: str
    events: list[Keyed] = field(default_factory=list)  # in the order the stages append them


def _keyed(env: Envelope, payload: Payload) -> Keyed:
    """On the topic, under the key, its schema declares."""
    topic, key_field = CODEC.registry.route(env.event_type)
    return Keyed(topic, getattr(payload, key_field), Event(env, payload))


def _window(tenant: str, at: datetime, max_wait: str, p95_ms: float) -> Keyed:
    env = Envelope.new("TelemetryRecorded", tenant, "inference")
    window = TelemetryRecorded(
        service="inference",
        instance="host-1",
        window_start=at - timedelta(seconds=10),
        window_end=at,
        operations=[OperationWindow(operation="Embed", requests=40, errors=0, p95_ms=p95_ms)],
        gauges=[GaugeSample(name="inference_queue_depth", value=3.0)],
        tunables={KNOB: max_wait},
    )
    return _keyed(env, window)


def ooda_cycle(tenant: str = "platform") -> Cycle:
    """observation -> two hypotheses -> a pending decision, approved by user:k1 -> the action
    and its ConfigChanged -> confirmed -> improved -> the playbook's prior; then a rollback of
    the action (its ConfigChanged, its read-back failing)."""
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    windows = [_window(tenant, at + timedelta(seconds=10 * i), "5", 20.0) for i in range(2)]
    observed = Envelope.new("ObservationMade", tenant, "ooda.observe")
    cycle_id = observed.event_id  # the observation id: every event of the cycle correlates to it
    chosen, passed_over = new_event_id(), new_event_id()

    observation = ObservationMade(
        observation_id=cycle_id,
        service="inference",
        metric="latency_p95_ms{operation=Embed}",
        metric_name="latency_p95_ms",
        labels={"operation": "Embed"},
        direction="up",
        baseline=12.5,
        current=20.0,
        effect=0.6,
        baseline_samples=30,
        recent_samples=2,
        windows=[w.event.envelope.event_id for w in windows],
        since=at,
        observed_at=at + timedelta(seconds=10),
    )
    proposed_env = observed.caused("HypothesesProposed", "ooda.orient")
    guard = Guardrail(metric="error_rate{operation=Embed}", worse="up", max_effect=0.1)
    proposed = HypothesesProposed(
        observation_id=cycle_id,
        metric=observation.metric,
        candidates=[
            Hypothesis(hypothesis_id=chosen, playbook=PLAYBOOK, knob=KNOB, current_value="5",
                       proposed_value="2", risk="medium", expect_metric=observation.metric,
                       expect_direction="down", min_effect=0.1, guardrails=[guard],
                       evaluation_s=300.0, cooldown_s=3600.0, prior_alpha=3.0, prior_beta=2.0,
                       expected_value=0.6),
            Hypothesis(hypothesis_id=passed_over, playbook="smaller-batches",
                       knob="inference.batch.max_size", current_value="32",
                       proposed_value="16", risk="low", expect_metric=observation.metric,
                       expect_direction="down", min_effect=0.1, evaluation_s=300.0,
                       cooldown_s=3600.0, prior_alpha=1.0, prior_beta=1.0, expected_value=0.5),
        ],
        proposed_at=at + timedelta(seconds=11),
    )  # fmt: skip
    decided_env = proposed_env.caused("DecisionMade", "ooda.decide")
    decision = DecisionMade(
        decision_id=decided_env.event_id,
        observation_id=cycle_id,
        hypothesis_id=chosen,
        playbook=PLAYBOOK,
        knob=KNOB,
        from_value="5",
        to_value="2",
        risk="medium",
        status="pending",
        reason="medium risk waits for an admin",
        drawn=0.71,
        alternatives=[
            Alternative(hypothesis_id=passed_over, playbook="smaller-batches", drawn=0.42)
        ],
        expires_at=at + timedelta(hours=1),
        decided_at=at + timedelta(seconds=12),
    )
    resolved_env = decided_env.caused("DecisionResolved", "ooda.decide")
    resolved = DecisionResolved(
        decision_id=decision.decision_id,
        knob=KNOB,
        status="approved",
        actor="user:k1",
        reason="the queue is the bottleneck",
        resolved_at=at + timedelta(minutes=5),
    )
    started_env = resolved_env.caused("ActionStarted", "ooda.act")
    change_env = started_env.caused("ConfigChanged", "ooda.act")
    started = ActionStarted(
        action_id=started_env.event_id,
        decision_id=decision.decision_id,
        knob=KNOB,
        old_value="5",
        new_value="2",
        actor=f"ooda:{decision.decision_id}",
        change_event_id=change_env.event_id,
        deadline=at + timedelta(minutes=6),
        started_at=at + timedelta(minutes=5),
    )
    change = ConfigChanged(
        key=KNOB, old_value="5", new_value="2", reason=decision.reason, actor=started.actor
    )
    confirmed_env = started_env.caused("ActionConfirmed", "ooda.act")
    confirmed = ActionConfirmed(
        action_id=started.action_id,
        knob=KNOB,
        instances=["host-1", "host-2"],
        confirmed_at=at + timedelta(minutes=5, seconds=20),
    )
    evaluated_env = confirmed_env.caused("OutcomeEvaluated", "ooda.learn")
    outcome = OutcomeEvaluated(
        outcome_id=evaluated_env.event_id,
        action_id=started.action_id,
        decision_id=decision.decision_id,
        playbook=PLAYBOOK,
        knob=KNOB,
        verdict="improved",
        metric=observation.metric,
        before_median=20.0,
        after_median=11.0,
        effect=-0.45,
        before_samples=12,
        after_samples=12,
        p_value=0.0031,
        baseline=12.5,
        rolled_back=False,
        evaluated_at=at + timedelta(minutes=10, seconds=20),
    )
    learned_env = evaluated_env.caused("PriorUpdated", "ooda.learn")
    prior = PriorUpdated(
        playbook=PLAYBOOK,
        alpha=4.0,
        beta=2.0,
        outcome_id=outcome.outcome_id,
        updated_at=outcome.evaluated_at,
    )
    rollback_env = evaluated_env.caused("ActionStarted", "ooda.act")
    rollback_change_env = rollback_env.caused("ConfigChanged", "ooda.act")
    rollback = ActionStarted(
        action_id=rollback_env.event_id,
        decision_id=decision.decision_id,
        knob=KNOB,
        old_value="2",
        new_value="5",
        actor=f"ooda:rollback:{started.action_id}",
        change_event_id=rollback_change_env.event_id,
        rollback_of=started.action_id,
        deadline=at + timedelta(minutes=12),
        started_at=at + timedelta(minutes=11),
    )
    rollback_change = ConfigChanged(
        key=KNOB,
        old_value="2",
        new_value="5",
        reason=f"rolling back action {started.action_id}",
        actor=rollback.actor,
    )
    rollback_failed = ActionFailed(
        action_id=rollback.action_id,
        knob=KNOB,
        reason="no read-back from every live replica",
        missing=["host-2"],
        failed_at=at + timedelta(minutes=12),
    )
    events = [
        _keyed(observed, observation),
        _keyed(proposed_env, proposed),
        _keyed(decided_env, decision),
        _keyed(resolved_env, resolved),
        _keyed(started_env, started),
        _keyed(change_env, change),
        _keyed(confirmed_env, confirmed),
        _keyed(evaluated_env, outcome),
        _keyed(learned_env, prior),
        _keyed(rollback_env, rollback),
        _keyed(rollback_change_env, rollback_change),
        _keyed(rollback_env.caused("ActionFailed", "ooda.act"), rollback_failed),
    ]
    return Cycle(
        tenant=tenant,
        windows=windows,
        observation=cycle_id,
        chosen=chosen,
        passed_over=passed_over,
        decision=decision.decision_id,
        resolution=resolved_env.event_id,
        action=started.action_id,
        change=change_env.event_id,
        outcome=outcome.outcome_id,
        prior=learned_env.event_id,
        rollback=rollback.action_id,
        rollback_change=rollback_change_env.event_id,
        events=events,
    )


@dataclass
class Release:
    """A version of a tenant's model, as IngestModel appends it."""

    tenant: str
    name: str
    version: str
    manifest: str  # the manifest atom's id: the version's identity
    tensors: dict[str, str]  # tensor name -> the atom holding its bytes
    tokenizer: str  # the tokenizer file's atom
    events: list[Keyed]


def _stored_atom(tenant: str, request_id: str, atom_id: str, known: set[str]) -> Keyed:
    """An AtomIngested when no one held the atom yet, else an AtomReferenced."""
    if atom_id in known:
        env = Envelope.new("AtomReferenced", tenant, "ingest", correlation_id=request_id)
        return _keyed(env, AtomReferenced(atom_id=atom_id, tenant_id=tenant))
    known.add(atom_id)
    env = Envelope.new("AtomIngested", tenant, "ingest", correlation_id=request_id)
    ingested = AtomIngested(
        atom_id=atom_id,
        tenant_id=tenant,
        modality="model",
        mime_type="application/octet-stream",
        size_bytes=64,
        blob_key=atom_id,
    )
    return _keyed(env, ingested)


def model_release(
    tenant: str, name: str, version: str, tensors: dict[str, str], known: set[str]
) -> Release:
    """A version whose tensors hold these texts (standing in for their bytes): an AtomIngested
    for each atom not in `known` (added to it), an AtomReferenced for the rest, then the
    ModelDecomposed. As ingest's, the manifest depends on the tensors only."""
    atoms = {tensor: sha256(text) for tensor, text in tensors.items()}
    manifest = sha256(json.dumps(atoms, sort_keys=True))
    tokenizer = sha256(f"{name} tokenizer")
    request_id = f"req-{tenant}-{name}-{version}"
    parts = dict.fromkeys([manifest, tokenizer, *atoms.values()])
    decomposed = ModelDecomposed(
        model_atom_id=manifest,
        tenant_id=tenant,
        format="safetensors",
        tensors=[
            TensorAtom(name=n, atom_id=a, dtype="F32", shape=[4, 4], size_bytes=64)
            for n, a in atoms.items()
        ],
        name=name,
        version=version,
        source_sha256=sha256(f"{manifest} file"),
        size_bytes=64 * len(atoms),
        architecture="llama",
        files={"tokenizer.json": tokenizer},
    )
    env = Envelope.new("ModelDecomposed", tenant, "ingest", correlation_id=request_id)
    events = [_stored_atom(tenant, request_id, a, known) for a in parts]
    return Release(
        tenant, name, version, manifest, atoms, tokenizer, [*events, _keyed(env, decomposed)]
    )


def promoted(release: Release, previous: Release | None = None, reason: str | None = None) -> Keyed:
    env = Envelope.new("ModelVersionPromoted", release.tenant, "ingest")
    promotion = ModelVersionPromoted(
        tenant_id=release.tenant,
        name=release.name,
        version=release.version,
        model_atom_id=release.manifest,
        previous_version=None if previous is None else previous.version,
        reason=reason,
    )
    return _keyed(env, promotion)


@dataclass
class ModelHistory:
    """acme's tiny-llm v1, then v2 with its head retrained, each promoted in turn; globex's own
    model holds acme's embedding tensor (the same bytes) and none of its names."""

    v1: Release
    v2: Release
    theirs: Release
    shared: str  # the embedding tensor's atom: in all three versions
    changed: str  # v2's retrained head: in v2 only
    events: list[Keyed]


def model_history(acme: str = "acme", globex: str = "globex") -> ModelHistory:
    known: set[str] = set()
    base = {"embed": "embedding weights", "layer.0": "layer 0 weights", "head": "head weights"}
    v1 = model_release(acme, "tiny-llm", "v1", base, known)
    v2 = model_release(acme, "tiny-llm", "v2", {**base, "head": "retrained head"}, known)
    theirs = model_release(globex, "globex-lm", "1.0", {"embed": "embedding weights"}, known)
    events = [
        *v1.events,
        promoted(v1),
        *v2.events,
        promoted(v2, v1, "retrained head"),
        *theirs.events,
    ]
    return ModelHistory(v1, v2, theirs, v1.tensors["embed"], v2.tensors["head"], events)


INPUT_MIME = "application/vnd.hartonomous.generation-input+json"
OUTPUT_MIME = "application/vnd.hartonomous.generation-output+json"


@dataclass
class Generation:
    """One generation's receipt, as inference appends it in one write: the InferencePerformed,
    the AtomIngested of its input (when stored) and output, and its usage."""

    tenant: str
    generation_id: str  # the receipt's event id, as the completion returned it
    input_atom: str | None
    output_atom: str
    receipt: InferencePerformed
    events: list[Keyed]


def generation(
    release: Release,
    tenant: str,
    prompt: str,
    answer: str,
    *,
    store_input: bool = True,
    greedy: bool = False,
) -> Generation:
    """A chat completion of `prompt` by the release, sampled with every parameter set, or
    greedy (temperature and top_k 0, top_p 1)."""
    env = Envelope.new("InferencePerformed", tenant, "inference")
    gid = env.event_id
    input_json = json.dumps({"messages": [{"content": prompt, "role": "user"}]}).encode()
    output_json = json.dumps({"text": answer, "tokens": [1, 2, 3]}).encode()
    input_id, output_id = (hashlib.sha256(doc).hexdigest() for doc in (input_json, output_json))
    receipt = InferencePerformed(
        generation_id=gid,
        tenant_id=tenant,
        model_id=release.name,
        model_version=release.manifest,
        tokenizer_atom_id=release.tokenizer,
        kind="chat",
        input_atom_id=input_id if store_input else None,
        input_sha256=input_id,
        output_atom_id=output_id,
        temperature=0.0 if greedy else 0.7,
        top_p=1.0 if greedy else 0.9,
        top_k=0 if greedy else 40,
        seed=2**40 + 7,
        max_tokens=64,
        stop=["\n\n", "User:"],
        finish_reason="stop",
        prompt_tokens=12,
        completion_tokens=3,
        first_token_ms=18.5,
        total_ms=42.25,
    )
    stored_atoms = [(output_id, OUTPUT_MIME, output_json)]
    if store_input:
        stored_atoms.insert(0, (input_id, INPUT_MIME, input_json))
    events = [_keyed(env, receipt)]
    for atom_id, mime, data in stored_atoms:
        ingested = AtomIngested(
            atom_id=atom_id,
            tenant_id=tenant,
            modality="binary",
            mime_type=mime,
            size_bytes=len(data),
            blob_key=atom_id,
            source_uri=f"generation:{gid}",
        )
        events.append(_keyed(env.caused("AtomIngested", "inference"), ingested))
    for unit, n in (
        ("prompt_tokens", receipt.prompt_tokens),
        ("completion_tokens", receipt.completion_tokens),
    ):
        usage = _usage(env, tenant, "generate", release.manifest, unit, n)
        events.append(Keyed("usage", tenant, usage))
    return Generation(tenant, gid, receipt.input_atom_id, receipt.output_atom_id, receipt, events)


def records(codec: AvroCodec, events: list[Keyed]) -> list[Record]:
    return [encode_event(codec, k.event, k.topic, k.key) for k in events]


def stored(codec: AvroCodec, events: list[Keyed], first_offset: int = 0) -> list[StoredRecord]:
    """As the log would hold them: one partition per topic, offsets in order."""
    offsets: dict[str, itertools.count[int]] = {}
    out = []
    for record in records(codec, events):
        offset = next(offsets.setdefault(record.topic, itertools.count(first_offset)))
        out.append(
            StoredRecord(
                record.topic,
                0,
                offset,
                datetime.now(UTC),
                record.key,
                record.value,
                dict(record.headers),
            )
        )
    return out
