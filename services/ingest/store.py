"""The catalog: the `atoms` topic projected into Postgres schema `ingest`.

Every write is a keyed upsert that is idempotent and independent of order: a row remembers the
event (UUIDv7, so ids sort by time) that decided it, the earliest for what an atom is and the
latest for a reference's metadata, so the same events applied in any order, any number of
times, give the same rows. That is what lets two appliers share the catalog: the request that
appended the events (read-your-writes) and the consumer group (replays, other replicas, a
crash between append and apply); and it is why a catalog rebuilt by replay equals the live one.

The consumer also claims each record in the kernel's Inbox (skipping re-deliveries, recording
its progress). The request path does not: the Inbox remembers one offset per partition, so a
request claiming offset k+1 before the consumer reached another replica's offset k would make
the consumer skip k.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias, cast

import asyncpg

from hartonomous.eventlog.port import Position, StoredRecord
from hartonomous.events.payloads import ModelDecomposed, ModelVersionPromoted
from hartonomous.runtime.inbox import Inbox
from services.ingest.domain.chunks import Chunk, Span
from services.ingest.domain.results import (
    AtomView,
    ModelVersionView,
    Promotion,
    SharedTensors,
    TensorPair,
)
from services.ingest.domain.storage import Holding

SCHEMA = "ingest"

PooledConnection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
_SETUP_LOCK = 0x494E_4745  # advisory lock: replicas starting together create the schema once

_DDL = f"""
create table if not exists {SCHEMA}.atoms (
    atom_id text primary key,
    modality text not null,
    mime_type text not null,
    size_bytes bigint not null,
    blob_key text not null,
    created_at timestamptz not null,
    event_id uuid not null);
create table if not exists {SCHEMA}.refs (
    tenant_id text not null,
    atom_id text not null,
    metadata_json text not null,
    source_uri text,
    first_seen timestamptz not null,
    last_seen timestamptz not null,
    event_id uuid not null,
    primary key (tenant_id, atom_id));
create table if not exists {SCHEMA}.chunk_sets (
    parent_atom_id text primary key,
    chunker text not null,
    event_id uuid not null);
create table if not exists {SCHEMA}.chunks (
    parent_atom_id text not null,
    chunk_index int not null,
    atom_id text not null,
    start_char bigint not null,
    end_char bigint not null,
    start_byte bigint not null,
    end_byte bigint not null,
    primary key (parent_atom_id, chunk_index));
create index if not exists chunks_by_atom on {SCHEMA}.chunks (atom_id);
create table if not exists {SCHEMA}.model_versions (
    tenant_id text not null,
    name text not null,
    version text not null,
    manifest_atom_id text not null,
    format text not null,
    architecture text,
    source_sha256 text not null,
    size_bytes bigint not null,
    ingested_at timestamptz not null,
    request_id text not null,
    event_id uuid not null,
    primary key (tenant_id, name, version));
create table if not exists {SCHEMA}.model_tensors (
    tenant_id text not null,
    name text not null,
    version text not null,
    tensor_index int not null,
    tensor_name text not null,
    atom_id text not null,
    size_bytes bigint not null,
    first_stored boolean not null,
    primary key (tenant_id, name, version, tensor_index));
create index if not exists model_tensors_by_atom on {SCHEMA}.model_tensors (tenant_id, atom_id);
create table if not exists {SCHEMA}.model_promotions (
    event_id uuid primary key,
    tenant_id text not null,
    name text not null,
    version text not null,
    manifest_atom_id text not null,
    promoted_at timestamptz not null,
    previous_version text,
    reason text);
create index if not exists model_promotions_by_name
    on {SCHEMA}.model_promotions (tenant_id, name, promoted_at);
create table if not exists {SCHEMA}.storage_metering (
    singleton boolean primary key default true check (singleton),
    metered_until timestamptz not null);
alter table {SCHEMA}.refs add column if not exists released_at timestamptz;
create table if not exists {SCHEMA}.erased_tenants (
    tenant_id text primary key,
    erased_at timestamptz not null,
    event_id uuid not null);
"""

# Nothing is written for an erased tenant, whichever order the events come in.
_NOT_ERASED = f"not exists (select 1 from {SCHEMA}.erased_tenants e where e.tenant_id = $1)"

# The earliest event that described an atom decides what it is.
_UPSERT_ATOMS = f"""
insert into {SCHEMA}.atoms as a
select id, $2::text, $3::text, size, id, $4::timestamptz, $5::uuid
from unnest($1::text[], $6::bigint[]) as u(id, size)
on conflict (atom_id) do update set
    modality = excluded.modality, mime_type = excluded.mime_type,
    size_bytes = excluded.size_bytes, blob_key = excluded.blob_key,
    created_at = excluded.created_at, event_id = excluded.event_id
where excluded.event_id < a.event_id
"""

# A reference spans first to last sighting; its latest event decides metadata and source, and
# whether it is released (AtomReleased). A reference made after a release starts anew.
_UPSERT_REF = f"""
insert into {SCHEMA}.refs as r
select $1::text, $2::text, $3::text, $4::text, $5::timestamptz, $5::timestamptz, $6::uuid, null
where {_NOT_ERASED}
on conflict (tenant_id, atom_id) do update set
    first_seen = case when r.released_at is not null and excluded.event_id > r.event_id
                      then excluded.first_seen else least(r.first_seen, excluded.first_seen) end,
    released_at = case when excluded.event_id > r.event_id then null else r.released_at end,
    last_seen = greatest(r.last_seen, excluded.last_seen),
    metadata_json = case when excluded.event_id > r.event_id
                         then excluded.metadata_json else r.metadata_json end,
    source_uri = case when excluded.event_id > r.event_id
                      then excluded.source_uri else r.source_uri end,
    event_id = greatest(r.event_id, excluded.event_id)
"""

# A release keeps the row as a tombstone (so an older event delivered again cannot bring the
# reference back) and nothing of what the tenant said about the atom.
_RELEASE_REF = f"""
insert into {SCHEMA}.refs as r
select $1::text, $2::text, '{{}}', null, $3::timestamptz, $3::timestamptz, $4::uuid, $3::timestamptz
where {_NOT_ERASED}
on conflict (tenant_id, atom_id) do update set
    released_at = excluded.released_at, metadata_json = '{{}}', source_uri = null,
    event_id = excluded.event_id
where excluded.event_id > r.event_id
"""

# The earliest chunking of a parent is its chunk set; returns a row when this one won.
_CLAIM_CHUNK_SET = f"""
insert into {SCHEMA}.chunk_sets as c values ($1, $2, $3)
on conflict (parent_atom_id) do update set chunker = excluded.chunker, event_id = excluded.event_id
where excluded.event_id < c.event_id
returning true
"""

# The earliest ModelDecomposed of a tenant's name and version is that version; returns a row
# when this one won.
_CLAIM_MODEL_VERSION = f"""
insert into {SCHEMA}.model_versions as v
select $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::bigint,
       $9::timestamptz, $10::text, $11::uuid
where {_NOT_ERASED}
on conflict (tenant_id, name, version) do update set
    manifest_atom_id = excluded.manifest_atom_id, format = excluded.format,
    architecture = excluded.architecture, source_sha256 = excluded.source_sha256,
    size_bytes = excluded.size_bytes, ingested_at = excluded.ingested_at,
    request_id = excluded.request_id, event_id = excluded.event_id
where excluded.event_id < v.event_id
returning true
"""

_INSERT_MODEL_TENSORS = f"""
insert into {SCHEMA}.model_tensors
select $1::text, $2::text, $3::text, * from unnest($4::int[], $5::text[], $6::text[],
                                                 $7::bigint[], $8::boolean[])
"""

_MODEL_VERSION = f"""
select v.*, count(t.*) as tensors, count(t.*) filter (where t.first_stored) as new_tensors,
       coalesce(sum(t.size_bytes) filter (where t.first_stored), 0)::bigint as new_bytes
from {SCHEMA}.model_versions v
left join {SCHEMA}.model_tensors t using (tenant_id, name, version)
where v.tenant_id = $1 and v.name = $2 and v.version = $3
group by v.tenant_id, v.name, v.version
"""

# Per other version of the tenant: how many of this version's tensors it holds too.
_SHARED_WITH = f"""
select o.name, o.version, count(*) as tensors, sum(t.size_bytes)::bigint as bytes
from {SCHEMA}.model_tensors t
join (select distinct tenant_id, name, version, atom_id from {SCHEMA}.model_tensors) o
  on o.tenant_id = t.tenant_id and o.atom_id = t.atom_id
     and (o.name, o.version) <> (t.name, t.version)
where t.tenant_id = $1 and t.name = $2 and t.version = $3
group by o.name, o.version order by o.name, o.version
"""

_MODEL_VERSIONS = f"""
select version from {SCHEMA}.model_versions where tenant_id = $1 and name = $2
order by ingested_at, version
"""

# Promotions up to a moment, in the order they happened (event ids are time-ordered and
# break a tie of timestamps).
_PROMOTIONS = f"""
select * from {SCHEMA}.model_promotions
where tenant_id = $1 and name = $2 and promoted_at <= $3
order by promoted_at, event_id
"""

# Tensor by tensor name: each version's atom and size (null where the version lacks it).
_DIFF = f"""
select coalesce(a.tensor_name, b.tensor_name) as tensor,
       a.atom_id as from_atom, b.atom_id as to_atom,
       a.size_bytes as from_bytes, b.size_bytes as to_bytes
from (select * from {SCHEMA}.model_tensors where (tenant_id, name, version) = ($1, $2, $3)) a
full join (select * from {SCHEMA}.model_tensors where (tenant_id, name, version) = ($1, $2, $4)) b
  using (tensor_name)
order by coalesce(a.tensor_index, b.tensor_index), tensor
"""

_INSERT_CHUNKS = f"""
insert into {SCHEMA}.chunks
select $1::text, * from unnest($2::int[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::bigint[])
"""

# What each tenant references at an instant: its own uploads and dedup hits, in full.
_HOLDINGS = f"""
select r.tenant_id, count(*) as atoms, sum(a.size_bytes) as bytes
from {SCHEMA}.refs r join {SCHEMA}.atoms a using (atom_id)
where r.first_seen < $1 and (r.released_at is null or r.released_at > $1)
group by r.tenant_id order by r.tenant_id
"""

# The tenant references the atom itself.
_REFERS = f"""
exists (select 1 from {SCHEMA}.refs r
        where r.tenant_id = $1 and r.atom_id = $2 and r.released_at is null)
"""

# A tenant sees the atoms it references, and the chunks of the texts it references.
_VISIBLE = f"""
({_REFERS}
 or exists (select 1 from {SCHEMA}.chunks c
            join {SCHEMA}.refs r on r.atom_id = c.parent_atom_id and r.tenant_id = $1
            where c.atom_id = $2 and r.released_at is null))
"""

# A page of the documents a tenant holds itself (not its model parts), in atom id order.
_DOCUMENTS = f"""
select a.atom_id, a.modality, a.mime_type, a.size_bytes, a.created_at,
       r.metadata_json, r.source_uri, s.chunker
from {SCHEMA}.refs r
join {SCHEMA}.atoms a using (atom_id)
left join {SCHEMA}.chunk_sets s on s.parent_atom_id = a.atom_id
where r.tenant_id = $1 and r.released_at is null and r.atom_id > $2
  and a.modality not in ('model', 'tensor')
order by r.atom_id
limit $3
"""

# Atoms some tenant references (or whose text it does, for a chunk): their blobs are live.
_LIVE = f"""
select a.atom_id from {SCHEMA}.atoms a
where a.atom_id = any($1::text[])
  and (exists (select 1 from {SCHEMA}.refs r
               where r.atom_id = a.atom_id and r.released_at is null)
       or exists (select 1 from {SCHEMA}.chunks c
                  join {SCHEMA}.refs r on r.atom_id = c.parent_atom_id and r.released_at is null
                  where c.atom_id = a.atom_id))
"""

# Why a tenant may not release an atom it sees: it is a part of one of its model versions.
_MODEL_PART = f"""
select name, version from {SCHEMA}.model_versions where tenant_id = $1 and manifest_atom_id = $2
union
select name, version from {SCHEMA}.model_tensors where tenant_id = $1 and atom_id = $2
order by name, version limit 1
"""


@dataclass(frozen=True)
class StoredAtom:
    """What the catalog knows of an atom regardless of tenant (the dedup check)."""

    modality: str
    mime_type: str
    size_bytes: int
    chunk_atom_ids: list[str]
    referenced: bool
    """Some tenant references it now; when none does, its blobs are being (or were) removed."""


def _view(atom_id: str, row: asyncpg.Record, chunks: list[Chunk]) -> AtomView:
    """A catalog row (atom, the tenant's reference, chunking) as the tenant sees it."""
    return AtomView(
        atom_id=atom_id,
        modality=row["modality"],
        mime_type=row["mime_type"],
        size_bytes=row["size_bytes"],
        metadata_json=row["metadata_json"] or "{}",
        source_uri=row["source_uri"],
        created_at=row["created_at"],
        chunker=row["chunker"],
        chunks=chunks,
    )


class CatalogWriter:
    """The catalog's writes inside one transaction."""

    def __init__(self, conn: PooledConnection, inbox: Inbox) -> None:
        self._conn = conn
        self._inbox = inbox

    async def claim(self, records: Sequence[StoredRecord]) -> set[Position]:
        """The consumer's claim: the positions of the records it has not applied yet."""
        return await self._inbox.claim(self._conn, records)

    async def upsert_atoms(
        self,
        sizes: dict[str, int],
        modality: str,
        mime_type: str,
        created_at: datetime,
        event_id: str,
    ) -> None:
        """Atoms stored under their own id as blob key; `sizes` maps atom id -> bytes."""
        await self._conn.execute(
            _UPSERT_ATOMS,
            list(sizes),
            modality,
            mime_type,
            created_at,
            event_id,
            list(sizes.values()),
        )

    async def upsert_ref(
        self,
        tenant_id: str,
        atom_id: str,
        metadata_json: str,
        source_uri: str | None,
        seen_at: datetime,
        event_id: str,
    ) -> None:
        await self._conn.execute(
            _UPSERT_REF, tenant_id, atom_id, metadata_json, source_uri, seen_at, event_id
        )

    async def release_ref(
        self, tenant_id: str, atom_id: str, released_at: datetime, event_id: str
    ) -> None:
        await self._conn.execute(_RELEASE_REF, tenant_id, atom_id, released_at, event_id)

    async def erase_tenant(self, tenant_id: str, erased_at: datetime, event_id: str) -> None:
        """Everything of the tenant goes, and nothing of it is written again."""
        await self._conn.execute(
            f"insert into {SCHEMA}.erased_tenants values ($1, $2, $3)"
            " on conflict (tenant_id) do nothing",
            tenant_id,
            erased_at,
            event_id,
        )
        for table in ("refs", "model_tensors", "model_versions", "model_promotions"):
            await self._conn.execute(
                f"delete from {SCHEMA}.{table} where tenant_id = $1", tenant_id
            )

    async def put_chunk_set(
        self, parent_id: str, chunker: str, chunks: Sequence[Chunk], event_id: str
    ) -> None:
        if not await self._conn.fetchval(_CLAIM_CHUNK_SET, parent_id, chunker, event_id):
            return
        await self._conn.execute(
            f"delete from {SCHEMA}.chunks where parent_atom_id = $1", parent_id
        )
        spans = [c.span for c in chunks]
        await self._conn.execute(
            _INSERT_CHUNKS,
            parent_id,
            [c.index for c in chunks],
            [c.atom_id for c in chunks],
            [s.start_char for s in spans],
            [s.end_char for s in spans],
            [s.start_byte for s in spans],
            [s.end_byte for s in spans],
        )

    async def put_model_version(
        self, version: ModelDecomposed, at: datetime, request_id: str, event_id: str
    ) -> None:
        claimed = await self._conn.fetchval(
            _CLAIM_MODEL_VERSION,
            version.tenant_id,
            version.name,
            version.version,
            version.model_atom_id,
            version.format,
            version.architecture,
            version.source_sha256,
            version.size_bytes,
            at,
            request_id,
            event_id,
        )
        if not claimed:
            return
        key = (version.tenant_id, version.name, version.version)
        await self._conn.execute(
            f"delete from {SCHEMA}.model_tensors where (tenant_id, name, version) = ($1, $2, $3)",
            *key,
        )
        tensors = version.tensors
        await self._conn.execute(
            _INSERT_MODEL_TENSORS,
            *key,
            list(range(len(tensors))),
            [t.name for t in tensors],
            [t.atom_id for t in tensors],
            [t.size_bytes for t in tensors],
            [t.first_stored for t in tensors],
        )

    async def put_promotion(
        self, promoted: ModelVersionPromoted, at: datetime, event_id: str
    ) -> None:
        await self._conn.execute(
            f"insert into {SCHEMA}.model_promotions"
            " select $2::uuid, $1::text, $3::text, $4::text, $5::text, $6::timestamptz, $7::text,"
            f" $8::text where {_NOT_ERASED} on conflict (event_id) do nothing",
            promoted.tenant_id,
            event_id,
            promoted.name,
            promoted.version,
            promoted.model_atom_id,
            at,
            promoted.previous_version,
            promoted.reason,
        )


class Catalog:
    def __init__(self, pool: asyncpg.Pool, consumer_group: str) -> None:
        self._pool = pool
        self._inbox = Inbox(SCHEMA, consumer_group)

    async def setup(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _SETUP_LOCK)
            await self._inbox.setup(conn)  # creates the schema
            await conn.execute(_DDL)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[CatalogWriter]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield CatalogWriter(conn, self._inbox)

    async def find(self, atom_id: str) -> StoredAtom | None:
        row = await self._pool.fetchrow(
            f"select modality, mime_type, size_bytes from {SCHEMA}.atoms where atom_id = $1",
            atom_id,
        )
        if row is None:
            return None
        chunks = await self._chunks(self._pool, atom_id)
        live = await self.known([atom_id])
        return StoredAtom(
            row["modality"],
            row["mime_type"],
            row["size_bytes"],
            [c.atom_id for c in chunks],
            referenced=atom_id in live,
        )

    async def holds(self, tenant_id: str, atom_id: str) -> bool:
        return bool(await self._pool.fetchval(f"select {_VISIBLE}", tenant_id, atom_id))

    async def visible(self, tenant_id: str, atom_id: str) -> AtomView | None:
        """The atom as `tenant_id` sees it; None when the tenant holds no reference to it."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            row = await conn.fetchrow(
                "select a.modality, a.mime_type, a.size_bytes, a.created_at,"
                " r.metadata_json, r.source_uri, s.chunker"
                f" from {SCHEMA}.atoms a"
                f" left join {SCHEMA}.refs r on r.atom_id = a.atom_id and r.tenant_id = $1"
                f" left join {SCHEMA}.chunk_sets s on s.parent_atom_id = a.atom_id"
                f" where a.atom_id = $2 and {_VISIBLE}",
                tenant_id,
                atom_id,
            )
            if row is None:
                return None
            return _view(atom_id, row, await self._chunks(conn, atom_id))

    async def documents(self, tenant_id: str, after: str, limit: int) -> list[AtomView]:
        """The tenant's documents with ids after `after`, at most `limit`, by id."""
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            rows = await conn.fetch(_DOCUMENTS, tenant_id, after, limit)
            chunks = await self._chunks_of(conn, [row["atom_id"] for row in rows])
        return [_view(row["atom_id"], row, chunks.get(row["atom_id"], [])) for row in rows]

    async def model_version(
        self, tenant_id: str, name: str, version: str
    ) -> ModelVersionView | None:
        row = await self._pool.fetchrow(_MODEL_VERSION, tenant_id, name, version)
        if row is None:
            return None
        shared = await self._pool.fetch(_SHARED_WITH, tenant_id, name, version)
        return ModelVersionView(
            tenant_id=tenant_id,
            name=name,
            version=version,
            manifest_atom_id=row["manifest_atom_id"],
            format=row["format"],
            architecture=row["architecture"],
            source_sha256=row["source_sha256"],
            size_bytes=row["size_bytes"],
            tensors=row["tensors"],
            new_tensors=row["new_tensors"],
            new_bytes=row["new_bytes"],
            shared_with=[
                SharedTensors(r["name"], r["version"], r["tensors"], r["bytes"]) for r in shared
            ],
            ingested_at=row["ingested_at"],
            request_id=row["request_id"],
        )

    async def model_versions(self, tenant_id: str, name: str) -> list[ModelVersionView]:
        """Every version of a name, oldest first."""
        found = []
        for row in await self._pool.fetch(_MODEL_VERSIONS, tenant_id, name):
            view = await self.model_version(tenant_id, name, row["version"])
            if view is not None:
                found.append(view)
        return found

    async def promotions(self, tenant_id: str, name: str, until: datetime) -> list[Promotion]:
        """A name's promotions up to `until`, oldest first: the last is the live version."""
        rows = await self._pool.fetch(_PROMOTIONS, tenant_id, name, until)
        return [
            Promotion(
                r["version"],
                r["manifest_atom_id"],
                r["promoted_at"],
                r["previous_version"],
                r["reason"],
            )
            for r in rows
        ]

    async def tensor_pairs(
        self, tenant_id: str, name: str, from_version: str, to_version: str
    ) -> list[TensorPair]:
        """Both versions' tensors matched by name, in the order the files list them."""
        rows = await self._pool.fetch(_DIFF, tenant_id, name, from_version, to_version)
        return [
            TensorPair(r["tensor"], r["from_atom"], r["to_atom"], r["from_bytes"], r["to_bytes"])
            for r in rows
        ]

    async def known(self, atom_ids: Sequence[str]) -> set[str]:
        """Which of these ids are live atoms: some tenant references them, or a text they are a
        chunk of (their blobs must stay)."""
        rows = await self._pool.fetch(_LIVE, list(atom_ids))
        return {row["atom_id"] for row in rows}

    async def refers(self, tenant_id: str, atom_id: str) -> bool:
        """The tenant holds the atom itself (not only as a chunk of one of its texts)."""
        return bool(await self._pool.fetchval(f"select {_REFERS}", tenant_id, atom_id))

    async def model_part(self, tenant_id: str, atom_id: str) -> tuple[str, str] | None:
        """The tenant's model (name, version) the atom is the manifest or a tensor of."""
        row = await self._pool.fetchrow(_MODEL_PART, tenant_id, atom_id)
        return None if row is None else (row["name"], row["version"])

    async def holdings(self, at: datetime) -> list[Holding]:
        """Every tenant's references made before `at`, by tenant id."""
        rows = await self._pool.fetch(_HOLDINGS, at)
        return [Holding(r["tenant_id"], r["atoms"], int(r["bytes"])) for r in rows]

    async def metered_until(self) -> datetime | None:
        """Where storage metering stopped: the end of the last period measured."""
        value = await self._pool.fetchval(f"select metered_until from {SCHEMA}.storage_metering")
        return cast(datetime | None, value)

    async def storage_metered(self, until: datetime) -> None:
        """Record that every period before `until` is measured (never moving back)."""
        await self._pool.execute(
            f"insert into {SCHEMA}.storage_metering as m values (true, $1)"
            " on conflict (singleton) do update"
            " set metered_until = greatest(m.metered_until, excluded.metered_until)",
            until,
        )

    @classmethod
    async def _chunks(cls, conn: asyncpg.Pool | PooledConnection, parent_id: str) -> list[Chunk]:
        return (await cls._chunks_of(conn, [parent_id])).get(parent_id, [])

    @staticmethod
    async def _chunks_of(
        conn: asyncpg.Pool | PooledConnection, parent_ids: Sequence[str]
    ) -> dict[str, list[Chunk]]:
        """Each parent's chunks in order (parents without chunks are absent)."""
        rows = await conn.fetch(
            "select parent_atom_id, chunk_index, atom_id, start_char, end_char, start_byte,"
            f" end_byte from {SCHEMA}.chunks where parent_atom_id = any($1::text[])"
            " order by parent_atom_id, chunk_index",
            list(parent_ids),
        )
        found: dict[str, list[Chunk]] = {}
        for r in rows:
            found.setdefault(r["parent_atom_id"], []).append(
                Chunk(
                    r["chunk_index"],
                    r["atom_id"],
                    Span(r["start_char"], r["end_char"], r["start_byte"], r["end_byte"]),
                )
            )
        return found
