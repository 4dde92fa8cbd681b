"""Typed event payloads: one frozen dataclass per event type, named after it and field for field
its `.avsc` (tests/unit/events/test_payloads.py proves the two agree). Producers build these and
consumers read them, so a misspelt field is a mypy error, not an Avro error at run time.

Arrays are lists and maps dicts, as Avro hands them over; fields are keyword-only, so a
payload reads like its schema. Nested records (a chunk of AtomChunked) are dataclasses too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar, get_args, get_origin, get_type_hints


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """Base of every payload (and of nested records)."""


# --- atoms ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AtomIngested(Payload):
    atom_id: str
    tenant_id: str
    modality: str
    mime_type: str
    size_bytes: int
    blob_key: str
    source_uri: str | None = None
    metadata_json: str = "{}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AtomReferenced(Payload):
    atom_id: str
    tenant_id: str
    source_uri: str | None = None
    metadata_json: str = "{}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AtomReleased(Payload):
    atom_id: str
    tenant_id: str
    actor: str
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantErased(Payload):
    tenant_id: str
    actor: str
    documents_released: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TextChunk(Payload):
    index: int
    atom_id: str
    start_char: int
    end_char: int
    start_byte: int
    end_byte: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AtomChunked(Payload):
    parent_atom_id: str
    tenant_id: str
    chunker: str
    chunks: list[TextChunk]


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageMeasured(Payload):
    tenant_id: str
    atoms: int
    bytes: int
    period_start: datetime
    period_end: datetime


# --- embeddings and models --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingComputed(Payload):
    atom_id: str
    tenant_id: str
    model_id: str
    model_version: str
    dim: int
    vector: list[float]
    normalized: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorAtom(Payload):
    name: str
    atom_id: str
    dtype: str
    shape: list[int]
    size_bytes: int
    first_stored: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDecomposed(Payload):
    model_atom_id: str
    tenant_id: str
    format: str
    tensors: list[TensorAtom]
    metadata_json: str = "{}"
    name: str = ""
    version: str = ""
    source_sha256: str = ""
    size_bytes: int = 0
    architecture: str | None = None
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersionPromoted(Payload):
    tenant_id: str
    name: str
    version: str
    model_atom_id: str
    previous_version: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InferencePerformed(Payload):
    generation_id: str
    tenant_id: str
    model_id: str
    model_version: str
    tokenizer_atom_id: str
    kind: str
    input_atom_id: str | None = None
    input_sha256: str
    output_atom_id: str
    temperature: float
    top_p: float
    top_k: int
    seed: int
    max_tokens: int
    stop: list[str]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    first_token_ms: float
    total_ms: float


# --- search and usage -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult(Payload):
    atom_id: str
    document_id: str
    chunk_index: int
    score: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchPerformed(Payload):
    tenant_id: str
    query_sha256: str
    query_bytes: int
    mode: str
    k: int
    modality: str | None = None
    metadata_filter: dict[str, str] = field(default_factory=dict)
    model_version: str | None = None
    results: list[SearchResult]
    api_key_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRecorded(Payload):
    tenant_id: str
    operation: str
    unit: str
    quantity: Decimal
    resource_id: str
    used_at: datetime
    api_key_id: str | None = None
    dimensions: dict[str, str] = field(default_factory=dict)


# --- control and telemetry --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChanged(Payload):
    key: str
    old_value: str | None = None
    new_value: str
    scope: str | None = None
    reason: str
    actor: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationWindow(Payload):
    operation: str
    requests: int
    errors: int
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GaugeSample(Payload):
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetryRecorded(Payload):
    service: str
    instance: str
    window_start: datetime
    window_end: datetime
    operations: list[OperationWindow]
    gauges: list[GaugeSample]
    tunables: dict[str, str] = field(default_factory=dict)


# --- the autonomous loop (ooda.*) -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservationMade(Payload):
    observation_id: str
    service: str
    metric: str
    metric_name: str
    labels: dict[str, str] = field(default_factory=dict)
    direction: str
    baseline: float
    current: float
    effect: float
    baseline_samples: int
    recent_samples: int
    windows: list[str]
    since: datetime
    observed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Guardrail(Payload):
    metric: str
    worse: str
    max_effect: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Hypothesis(Payload):
    hypothesis_id: str
    playbook: str
    knob: str
    current_value: str
    proposed_value: str
    risk: str
    expect_metric: str
    expect_direction: str
    min_effect: float
    guardrails: list[Guardrail] = field(default_factory=list)
    evaluation_s: float
    cooldown_s: float
    prior_alpha: float
    prior_beta: float
    expected_value: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HypothesesProposed(Payload):
    observation_id: str
    metric: str
    candidates: list[Hypothesis]
    proposed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Alternative(Payload):
    hypothesis_id: str
    playbook: str
    drawn: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionMade(Payload):
    decision_id: str
    observation_id: str
    hypothesis_id: str
    playbook: str
    knob: str
    from_value: str
    to_value: str
    risk: str
    status: str
    reason: str
    drawn: float
    alternatives: list[Alternative] = field(default_factory=list)
    expires_at: datetime | None = None
    decided_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionResolved(Payload):
    decision_id: str
    knob: str
    status: str
    actor: str
    reason: str = ""
    resolved_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionStarted(Payload):
    action_id: str
    decision_id: str
    knob: str
    old_value: str
    new_value: str
    actor: str
    change_event_id: str
    rollback_of: str | None = None
    deadline: datetime
    started_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionConfirmed(Payload):
    action_id: str
    knob: str
    instances: list[str]
    confirmed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionFailed(Payload):
    action_id: str
    knob: str
    reason: str
    missing: list[str] = field(default_factory=list)
    failed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeEvaluated(Payload):
    outcome_id: str
    action_id: str
    decision_id: str
    playbook: str
    knob: str
    verdict: str
    metric: str
    before_median: float | None = None
    after_median: float | None = None
    effect: float | None = None
    before_samples: int
    after_samples: int
    p_value: float | None = None
    baseline: float | None = None
    guardrail_breaches: list[str] = field(default_factory=list)
    rolled_back: bool
    evaluated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PriorUpdated(Payload):
    playbook: str
    alpha: float
    beta: float
    outcome_id: str
    suspended_until: datetime | None = None
    updated_at: datetime


EVENT_PAYLOADS: Mapping[str, type[Payload]] = {
    cls.__name__: cls
    for cls in (
        AtomIngested,
        AtomReferenced,
        AtomReleased,
        TenantErased,
        AtomChunked,
        StorageMeasured,
        EmbeddingComputed,
        ModelDecomposed,
        ModelVersionPromoted,
        InferencePerformed,
        SearchPerformed,
        UsageRecorded,
        ConfigChanged,
        TelemetryRecorded,
        ObservationMade,
        HypothesesProposed,
        DecisionMade,
        DecisionResolved,
        ActionStarted,
        ActionConfirmed,
        ActionFailed,
        OutcomeEvaluated,
        PriorUpdated,
    )
}
"""Event type -> its payload class (nested records are not event types)."""

P = TypeVar("P", bound=Payload)


# --- to and from Avro's dicts -----------------------------------------------------------------


_NESTED: dict[type[Payload], dict[str, type[Payload]]] = {}


def _nested(cls: type[Payload]) -> dict[str, type[Payload]]:
    """Fields that hold a list of records -> the record class (worked out once per class, so
    the hot paths convert only those and hand every other value over as it is)."""
    if cls in _NESTED:
        return _NESTED[cls]
    found = _NESTED[cls] = {}
    for name, hint in get_type_hints(cls).items():
        (item, *_) = get_args(hint) or (None,)
        if get_origin(hint) is list and isinstance(item, type) and issubclass(item, Payload):
            found[name] = item
    return found


def to_avro(value: Payload) -> dict[str, Any]:
    """The dict Avro encodes: every field by name, nested records as dicts."""
    out = {f.name: getattr(value, f.name) for f in fields(value)}
    for name in _nested(type(value)):
        out[name] = [to_avro(item) for item in out[name]]
    return out


def from_avro(cls: type[P], datum: Mapping[str, Any]) -> P:
    """A payload from the dict Avro decoded (already resolved to the current schema)."""
    nested = _nested(cls)
    if not nested:
        return cls(**datum)
    values = dict(datum)
    for name, item_cls in nested.items():
        values[name] = [from_avro(item_cls, item) for item in values[name]]
    return cls(**values)
