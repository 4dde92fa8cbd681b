"""Event -> graph facts: one function per event type, pure (projector.py writes the facts).

Every event becomes an Event node (its envelope) linked to the event that caused it; the
functions below add what the payload states. Content (atoms, chunks, tensors, embeddings) is
shared by content address and carries no tenant's data: what a tenant did with it (its upload's
source and metadata, its requests, its usage) stays on the tenant's own nodes and edges.

The autonomous loop's cycle is a chain keyed by the loop's own ids: Observation <-PROPOSED_FOR-
Hypothesis <-CHOSE- Decision <-EXECUTES- Action -CHANGED-> ConfigChange, Outcome -EVALUATES->
Action, Prior -LEARNED_FROM-> Outcome. A node keeps its first statement (domain's merge rule), so
what a later event says about it (a decision's approval, an action's read-back) is a RESOLVED_BY
edge to that event's own node, never a second statement of the node.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from hartonomous.eventlog.port import StoredRecord
from hartonomous.events import Envelope, Event
from hartonomous.events.payloads import (
    ActionConfirmed,
    ActionFailed,
    ActionStarted,
    AtomChunked,
    AtomIngested,
    AtomReferenced,
    AtomReleased,
    ConfigChanged,
    DecisionMade,
    DecisionResolved,
    EmbeddingComputed,
    HypothesesProposed,
    InferencePerformed,
    ModelDecomposed,
    ModelVersionPromoted,
    ObservationMade,
    OutcomeEvaluated,
    Payload,
    PriorUpdated,
    SearchPerformed,
    TelemetryRecorded,
    TenantErased,
    UsageRecorded,
    to_avro,
)
from hartonomous.runtime.projection import PoisonEvent
from services.provenance.domain import (
    Facts,
    FactSet,
    Label,
    Origin,
    Partition,
    Props,
    Rel,
    Scalar,
    Value,
    advance,
)

TEXT_MIME = "text/plain; charset=utf-8"


def _tenant(f: FactSet, tenant_id: str) -> str:
    """No event defines a tenant (nor ever states anything about it): events only name one."""
    return f.mention(Label.TENANT, tenant_id, tenant=tenant_id)


def _atom(f: FactSet, atom_id: str) -> str:
    """An atom this event names but does not describe: content, seen by those who hold it."""
    return f.mention(Label.ATOM, atom_id, scope=atom_id)


def _holding(payload: AtomIngested | AtomReferenced, env: Envelope) -> Props:
    """What a tenant's upload says about the atom: private to that tenant."""
    props: dict[str, str] = {
        "metadata_json": payload.metadata_json,
        "request_id": env.correlation_id,
    }
    if payload.source_uri is not None:
        props["source_uri"] = payload.source_uri
    return props


def on_atom_ingested(f: FactSet, payload: AtomIngested, env: Envelope) -> None:
    atom_id = payload.atom_id
    atom = f.node(
        Label.ATOM,
        atom_id,
        scope=atom_id,
        props={
            "atom_id": atom_id,
            "modality": payload.modality,
            "mime_type": payload.mime_type,
            "size_bytes": payload.size_bytes,
        },
    )
    f.recorded(atom, env.tenant_id)
    tenant = _tenant(f, payload.tenant_id)
    f.edge(Rel.OWNS, tenant, atom, tenant=payload.tenant_id, props=_holding(payload, env))


def on_atom_referenced(f: FactSet, payload: AtomReferenced, env: Envelope) -> None:
    atom_id = payload.atom_id
    atom = _atom(f, atom_id)
    tenant = _tenant(f, payload.tenant_id)
    f.edge(Rel.REFERENCED, tenant, atom, tenant=payload.tenant_id, props=_holding(payload, env))


def on_atom_released(f: FactSet, payload: AtomReleased, env: Envelope) -> None:
    """A tombstone: who deleted the atom for the tenant, when and why, and nothing of its
    content (the Event node says when it was recorded)."""
    props: dict[str, str] = {"actor": payload.actor, "released_at": env.occurred_at.isoformat()}
    if payload.reason is not None:
        props["reason"] = payload.reason
    atom = _atom(f, payload.atom_id)
    tenant = _tenant(f, payload.tenant_id)
    f.edge(Rel.RELEASED, tenant, atom, tenant=payload.tenant_id, props=props)


def on_tenant_erased(f: FactSet, payload: TenantErased, env: Envelope) -> None:
    """The tenant's releases came before; its sealed fields no longer open anywhere."""
    props: dict[str, Scalar] = {
        "actor": payload.actor,
        "documents_released": payload.documents_released,
    }
    tenant = _tenant(f, payload.tenant_id)
    f.edge(Rel.ERASED, tenant, f.event_uid, tenant=payload.tenant_id, props=props)


def chunk_key(parent_atom_id: str, chunker: str, index: int) -> str:
    """A chunk is a position in its parent under one chunking strategy."""
    return f"{parent_atom_id}/{hashlib.sha256(chunker.encode()).hexdigest()[:12]}/{index}"


def on_atom_chunked(f: FactSet, payload: AtomChunked, env: Envelope) -> None:
    parent_id, chunker = payload.parent_atom_id, payload.chunker
    parent = _atom(f, parent_id)
    for chunk in payload.chunks:
        atom_id = chunk.atom_id
        node = f.node(
            Label.CHUNK,
            chunk_key(parent_id, chunker, chunk.index),
            scope=parent_id,
            props={
                "atom_id": atom_id,
                "parent_atom_id": parent_id,
                "index": chunk.index,
                "start_char": chunk.start_char,
                "end_char": chunk.end_char,
                "start_byte": chunk.start_byte,
                "end_byte": chunk.end_byte,
                "chunker": chunker,
            },
        )
        f.recorded(node, env.tenant_id)
        content = f.node(
            Label.ATOM,
            atom_id,
            scope=atom_id,
            props={
                "atom_id": atom_id,
                "modality": "text",
                "mime_type": TEXT_MIME,
                "size_bytes": chunk.end_byte - chunk.start_byte,
            },
        )
        f.edge(Rel.CHUNK_OF, node, parent)
        f.edge(Rel.CONTENT, node, content)


def on_embedding_computed(f: FactSet, payload: EmbeddingComputed, env: Envelope) -> None:
    atom_id, model_id, version = payload.atom_id, payload.model_id, payload.model_version
    atom = _atom(f, atom_id)
    embedding = f.node(
        Label.EMBEDDING,
        f"{atom_id}/{version}",
        scope=atom_id,
        props={
            "atom_id": atom_id,
            "model_id": model_id,
            "model_version": version,
            "dim": payload.dim,
            "normalized": payload.normalized,
        },
    )
    f.recorded(embedding, env.tenant_id)
    # Only named: a model's ingest defines the version (keyed by its manifest's address, which
    # inference reports as model_version), and a statement from here would win the merge over
    # that one (its topic sorts first).
    model_version = f.mention(Label.MODEL_VERSION, version)
    model = f.node(Label.MODEL, model_id, props={"model_id": model_id})
    f.edge(Rel.EMBEDDED_AS, atom, embedding)
    f.edge(Rel.COMPUTED_BY, embedding, model_version)
    f.edge(Rel.VERSION_OF, model_version, model)


def on_usage_recorded(f: FactSet, payload: UsageRecorded, env: Envelope) -> None:
    tenant_id = payload.tenant_id
    props: dict[str, Any] = {
        "operation": payload.operation,
        "unit": payload.unit,
        "quantity": str(payload.quantity),
        "resource_id": payload.resource_id,
        "used_at": _scalar(payload.used_at),
        "dimensions_json": _json(payload.dimensions),
    }
    if payload.api_key_id is not None:
        props["api_key_id"] = payload.api_key_id
    usage = f.node(Label.USAGE_RECORD, env.event_id, tenant=tenant_id, props=props)
    f.recorded(usage, tenant_id)
    _tenant(f, tenant_id)
    if env.causation_id is not None:
        cause = f.mention(Label.EVENT, env.causation_id, tenant=env.tenant_id)
        f.edge(Rel.BILLED_AS, cause, usage, tenant=tenant_id)


def on_search_performed(f: FactSet, payload: SearchPerformed, env: Envelope) -> None:
    """The tenant's search, linked to what it returned (best rank first) and to the model
    version that ranked it: upstream of an answer are the chunks it was made of."""
    tenant_id = payload.tenant_id
    props: dict[str, Any] = {
        "query_sha256": payload.query_sha256,
        "query_bytes": payload.query_bytes,
        "mode": payload.mode,
        "k": payload.k,
        "metadata_filter_json": _json(payload.metadata_filter),
        "result_count": len(payload.results),
    }
    optional = {
        "modality": payload.modality,
        "model_version": payload.model_version,
        "api_key_id": payload.api_key_id,
    }
    props.update({name: value for name, value in optional.items() if value is not None})
    search = f.node(Label.SEARCH_QUERY, env.event_id, tenant=tenant_id, props=props)
    f.recorded(search, tenant_id)
    returned: set[str] = set()
    for rank, result in enumerate(payload.results):
        atom_id = result.atom_id
        if atom_id in returned:  # one chunk in two documents: its best rank speaks for it
            continue
        returned.add(atom_id)
        atom = _atom(f, atom_id)
        hit: Props = {
            "rank": rank,
            "score": result.score,
            "document_id": result.document_id,
            "chunk_index": result.chunk_index,
        }
        f.edge(Rel.USED_INPUT, search, atom, tenant=tenant_id, props=hit)
    if payload.model_version is not None:
        model_version = f.mention(Label.MODEL_VERSION, payload.model_version)
        f.edge(Rel.USED_INPUT, search, model_version, tenant=tenant_id)


def on_inference_performed(f: FactSet, payload: InferencePerformed, env: Envelope) -> None:
    """A generation's receipt: the tenant's Inference node, keyed by the generation id the
    completion returned, with every parameter, count and timing; USED_INPUT (its role a property,
    as lineage shows edges, not fields) to the input atom when the tenant stores prompts, to the
    model version (only named: its ingest defines it) and to the tokenizer atom; PRODUCED to the
    output atom. The same append ingests the input and output atoms as the tenant's own."""
    tenant_id = payload.tenant_id
    props = {k: v for k, v in _record_props(payload).items() if k != "tenant_id"}
    inference = f.node(Label.INFERENCE, payload.generation_id, tenant=tenant_id, props=props)
    f.recorded(inference, tenant_id)
    used = {
        "model": f.mention(Label.MODEL_VERSION, payload.model_version),
        "tokenizer": _atom(f, payload.tokenizer_atom_id),
    }
    if payload.input_atom_id is not None:
        used["input"] = _atom(f, payload.input_atom_id)
    for role, target in used.items():
        f.edge(Rel.USED_INPUT, inference, target, tenant=tenant_id, props={"role": role})
    f.edge(Rel.PRODUCED, inference, _atom(f, payload.output_atom_id), tenant=tenant_id)


def on_config_changed(f: FactSet, payload: ConfigChanged, env: Envelope) -> None:
    props: dict[str, Any] = {
        "config_key": payload.key,
        "new_value": payload.new_value,
        "reason": payload.reason,
        "actor": payload.actor,
    }
    if payload.old_value is not None:
        props["old_value"] = payload.old_value
    if payload.scope is not None:
        props["config_scope"] = payload.scope
    change = f.node(Label.CONFIG_CHANGE, env.event_id, tenant=env.tenant_id, props=props)
    f.recorded(change, env.tenant_id)


def model_key(tenant_id: str, name: str) -> str:
    """A model is a tenant's name for it: the same name in two tenants is two models (a name
    holds no '/', so the key reads back unambiguously)."""
    return f"{tenant_id}/{name}"


def on_model_decomposed(f: FactSet, payload: ModelDecomposed, env: Envelope) -> None:
    """The version is content, keyed by its manifest's address (the model_version inference
    reports): public like every model version, and carrying no tenant's data, since two tenants
    uploading the same files share it. The name and the version label are the uploading tenant's
    own Model node and VERSION_OF edge. Tensors are per version and name, their bytes atoms
    shared across versions; the manifest and the companion files (part of it) are atoms too."""
    tenant_id, manifest = payload.tenant_id, payload.model_atom_id
    version = f.node(
        Label.MODEL_VERSION,
        manifest,
        props=_props(
            model_atom_id=manifest,
            format=payload.format,
            architecture=payload.architecture,
            source_sha256=payload.source_sha256,
            size_bytes=payload.size_bytes,
        ),
    )
    f.recorded(version, env.tenant_id)
    model = f.node(
        Label.MODEL,
        model_key(tenant_id, payload.name),
        tenant=tenant_id,
        props={"name": payload.name},
    )
    f.edge(Rel.VERSION_OF, version, model, tenant=tenant_id, props={"version": payload.version})
    f.edge(Rel.CONTENT, version, _atom(f, manifest))
    for path, atom_id in payload.files.items():
        file = _atom(f, atom_id)
        f.edge(Rel.CONTENT, version, file, props={"path": path})
    for tensor in payload.tensors:
        atom_id = tensor.atom_id
        node = f.node(
            Label.TENSOR,
            f"{manifest}/{tensor.name}",
            scope=manifest,
            props={
                "name": tensor.name,
                "atom_id": atom_id,
                "dtype": tensor.dtype,
                "shape_json": _json(tensor.shape),
                "size_bytes": tensor.size_bytes,
            },
        )
        f.recorded(node, env.tenant_id)
        f.edge(Rel.TENSOR_OF, node, version)
        f.edge(Rel.CONTENT, node, _atom(f, atom_id))


def on_model_version_promoted(f: FactSet, payload: ModelVersionPromoted, env: Envelope) -> None:
    """An edge to the promotion's own event, one per promotion: the version's node keeps its
    first statement, and which version was live when is a fold over these edges."""
    version = f.mention(Label.MODEL_VERSION, payload.model_atom_id)
    props = _props(
        name=payload.name,
        version=payload.version,
        previous_version=payload.previous_version,
        reason=payload.reason,
        promoted_at=env.occurred_at,
    )
    f.edge(Rel.PROMOTED_BY, version, f.event_uid, tenant=payload.tenant_id, props=props)


# ---------------------------------------------------------------------------------------
# The autonomous loop (ooda.*): one cycle, every event carrying its observation id as the
# correlation id.


def on_observation_made(f: FactSet, payload: ObservationMade, env: Envelope) -> None:
    """The windows stay event ids in a list: telemetry windows never become nodes."""
    props = _record_props(payload)
    node = f.node(Label.OBSERVATION, payload.observation_id, tenant=env.tenant_id, props=props)
    f.recorded(node, env.tenant_id)


def on_hypotheses_proposed(f: FactSet, payload: HypothesesProposed, env: Envelope) -> None:
    tenant = env.tenant_id
    observation = f.mention(Label.OBSERVATION, payload.observation_id, tenant=tenant)
    for candidate in payload.candidates:
        props = _record_props(
            candidate, observation_id=payload.observation_id, proposed_at=payload.proposed_at
        )
        node = f.node(Label.HYPOTHESIS, candidate.hypothesis_id, tenant=tenant, props=props)
        f.recorded(node, tenant)
        f.edge(Rel.PROPOSED_FOR, node, observation, tenant=tenant)


def on_decision_made(f: FactSet, payload: DecisionMade, env: Envelope) -> None:
    tenant = env.tenant_id
    props = _record_props(payload)
    decision = f.node(Label.DECISION, payload.decision_id, tenant=tenant, props=props)
    f.recorded(decision, tenant)
    chosen = f.mention(Label.HYPOTHESIS, payload.hypothesis_id, tenant=tenant)
    f.edge(Rel.CHOSE, decision, chosen, tenant=tenant)


def on_decision_resolved(f: FactSet, payload: DecisionResolved, env: Envelope) -> None:
    """An admin's approval or rejection (actor user:<key id>), or the expiry (ooda:expiry)."""
    tenant = env.tenant_id
    decision = f.mention(Label.DECISION, payload.decision_id, tenant=tenant)
    props = _props(
        status=payload.status,
        actor=payload.actor,
        reason=payload.reason,
        resolved_at=payload.resolved_at,
    )
    f.edge(Rel.RESOLVED_BY, decision, f.event_uid, tenant=tenant, props=props)


def on_action_started(f: FactSet, payload: ActionStarted, env: Envelope) -> None:
    tenant = env.tenant_id
    props = _record_props(payload)
    action = f.node(Label.ACTION, payload.action_id, tenant=tenant, props=props)
    f.recorded(action, tenant)
    decision = f.mention(Label.DECISION, payload.decision_id, tenant=tenant)
    f.edge(Rel.EXECUTES, action, decision, tenant=tenant)
    change = f.mention(Label.CONFIG_CHANGE, payload.change_event_id, tenant=tenant)
    f.edge(Rel.CHANGED, action, change, tenant=tenant)
    if payload.rollback_of is not None:
        reverted = f.mention(Label.ACTION, payload.rollback_of, tenant=tenant)
        f.edge(Rel.ROLLS_BACK, action, reverted, tenant=tenant)


def on_action_confirmed(f: FactSet, payload: ActionConfirmed, env: Envelope) -> None:
    tenant = env.tenant_id
    action = f.mention(Label.ACTION, payload.action_id, tenant=tenant)
    props = _props(
        status="confirmed", instances=payload.instances, confirmed_at=payload.confirmed_at
    )
    f.edge(Rel.RESOLVED_BY, action, f.event_uid, tenant=tenant, props=props)


def on_action_failed(f: FactSet, payload: ActionFailed, env: Envelope) -> None:
    tenant = env.tenant_id
    action = f.mention(Label.ACTION, payload.action_id, tenant=tenant)
    props = _props(
        status="failed",
        reason=payload.reason,
        missing=payload.missing,
        failed_at=payload.failed_at,
    )
    f.edge(Rel.RESOLVED_BY, action, f.event_uid, tenant=tenant, props=props)


def on_outcome_evaluated(f: FactSet, payload: OutcomeEvaluated, env: Envelope) -> None:
    tenant = env.tenant_id
    props = _record_props(payload)
    outcome = f.node(Label.OUTCOME, payload.outcome_id, tenant=tenant, props=props)
    f.recorded(outcome, tenant)
    action = f.mention(Label.ACTION, payload.action_id, tenant=tenant)
    f.edge(Rel.EVALUATES, outcome, action, tenant=tenant)


def on_prior_updated(f: FactSet, payload: PriorUpdated, env: Envelope) -> None:
    """A node per update (the playbook's prior as of this outcome): one node holding the current
    prior would need a later statement to win over an earlier one, against the merge rule."""
    tenant = env.tenant_id
    props = _record_props(payload)
    prior = f.node(Label.PRIOR, env.event_id, tenant=tenant, props=props)
    f.recorded(prior, tenant)
    outcome = f.mention(Label.OUTCOME, payload.outcome_id, tenant=tenant)
    f.edge(Rel.LEARNED_FROM, prior, outcome, tenant=tenant)


def _scalar(value: Any) -> Scalar:
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return _json(value)


def _props(**values: Any) -> dict[str, Value]:
    """A fact's properties: absent (None) values left out, a list of strings kept a list."""
    return {name: _value(value) for name, value in values.items() if value is not None}


def _record_props(record: Any, **extra: Any) -> dict[str, Value]:
    """Every field of a payload (or of a record in one) as a property, then `extra`. A mapping
    or a list of records, which a property cannot hold, is JSON text under `<name>_json`."""
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(record):
        value = getattr(record, spec.name)
        if isinstance(value, Mapping):
            values[f"{spec.name}_json"] = _json(value)
        elif isinstance(value, list) and spec.type != "list[str]":
            values[f"{spec.name}_json"] = _json([to_avro(item) for item in value])
        else:
            values[spec.name] = value
    return _props(**values, **extra)


def _value(value: Any) -> Value:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return _scalar(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


UNMAPPED = (TelemetryRecorded,)
"""Events with no place in the graph: telemetry windows are many, and the OODA observations
made of them are the nodes worth following (they name the windows they used by event id)."""

Mapper = Callable[[FactSet, Any, Envelope], None]

MAPPERS: Mapping[type[Payload], Mapper] = {
    AtomIngested: on_atom_ingested,
    AtomReferenced: on_atom_referenced,
    AtomReleased: on_atom_released,
    TenantErased: on_tenant_erased,
    AtomChunked: on_atom_chunked,
    EmbeddingComputed: on_embedding_computed,
    UsageRecorded: on_usage_recorded,
    SearchPerformed: on_search_performed,
    InferencePerformed: on_inference_performed,
    ConfigChanged: on_config_changed,
    ModelDecomposed: on_model_decomposed,
    ModelVersionPromoted: on_model_version_promoted,
    ObservationMade: on_observation_made,
    HypothesesProposed: on_hypotheses_proposed,
    DecisionMade: on_decision_made,
    DecisionResolved: on_decision_resolved,
    ActionStarted: on_action_started,
    ActionConfirmed: on_action_confirmed,
    ActionFailed: on_action_failed,
    OutcomeEvaluated: on_outcome_evaluated,
    PriorUpdated: on_prior_updated,
}
"""Event type -> what its payload states, beyond the Event node every event becomes."""


def origin_of(event: Event[Payload]) -> Origin:
    record, env = event.logged, event.envelope
    return Origin(
        record.topic,
        record.partition,
        record.offset,
        env.event_id,
        env.tenant_id,
        env.occurred_at.isoformat(),
    )


def project(event: Event[Payload]) -> Facts:
    """Everything one event states. PoisonEvent: the payload does not fit its mapping, and never
    will (the live consumer dead-letters it; an audit's replay skips it the same way)."""
    try:
        return _facts_of(event)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PoisonEvent(f"{event.event_type} does not map onto the graph: {exc!r}") from exc


def positions_after(records: Iterable[StoredRecord]) -> dict[Partition, int]:
    """(topic, partition) -> the offset after the last of these records."""
    positions: dict[Partition, int] = {}
    for record in records:
        advance(positions, record.topic, record.partition, record.offset + 1)
    return positions


def _facts_of(event: Event[Payload]) -> Facts:
    if isinstance(event.payload, UNMAPPED):
        return Facts()
    env = event.envelope
    f = FactSet(origin_of(event))
    mapper = MAPPERS.get(type(event.payload))
    if mapper is not None:
        mapper(f, event.payload, env)
    f.event_props.update(
        event_type=env.event_type, correlation_id=env.correlation_id, produced_by=env.produced_by
    )
    if env.causation_id is not None:
        f.event_props["causation_id"] = env.causation_id
    f.node(Label.EVENT, env.event_id, tenant=env.tenant_id, props=f.event_props)
    if env.causation_id is not None:
        cause = f.mention(Label.EVENT, env.causation_id, tenant=env.tenant_id)
        f.edge(Rel.CAUSED_BY, f.event_uid, cause, tenant=env.tenant_id)
    return f.facts
