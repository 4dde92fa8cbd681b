"""The projection's own adapter: its join state in Postgres (schema `search`), the parts a point
is made of (a document, a tenant's reference to it, its chunks, their vectors), kept until the
last of them arrives, whatever the order the topics deliver them in.

Each part is a keyed upsert with an order-free rule for which version wins (the earliest event
for content, the latest for what a later event supersedes), so replays and re-deliveries
converge on one state. Recording a part and reading the points it completes is one
SERIALIZABLE transaction: when two consumers record the two halves of one join at once, one
of them fails and is retried, so neither can miss the other's half."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from services.search.domain import Chunk, IndexedChunk, Meta, SparseVector

if TYPE_CHECKING:  # the proxy class is generic only in the type stubs
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]

SCHEMA = "search"
VERSION = 3
"""What the schema's rows mean; bumped when that changes (2: chunks keep term counts, where 1
kept BM25 weights; 3: references can be released, points know their tenant). A schema of
another version is dropped and rebuilt from the log."""

_DDL = """
create schema if not exists {schema};
create table if not exists {schema}.version (version int not null);
create table if not exists {schema}.documents (
  document_id text primary key, modality text not null, mime_type text not null,
  event_id text not null);
create table if not exists {schema}.refs (
  document_id text not null, tenant_id text not null, meta jsonb not null,
  referenced_at timestamptz not null, event_id text not null,
  released boolean not null default false,
  primary key (document_id, tenant_id));
create table if not exists {schema}.chunk_sets (
  document_id text primary key, event_id text not null);
create table if not exists {schema}.chunks (
  document_id text not null, chunk_id text not null, chunk_index int not null,
  snippet text not null, term_ids bigint[] not null, term_counts float8[] not null,
  primary key (document_id, chunk_id));
create index if not exists chunks_by_chunk_id on {schema}.chunks (chunk_id);
create table if not exists {schema}.vectors (
  atom_id text not null, model_version text not null, vector float4[] not null,
  event_id text not null, primary key (atom_id, model_version));
create table if not exists {schema}.model_versions (model_version text primary key);
create table if not exists {schema}.points (
  point_id uuid primary key, document_id text not null, chunk_id text not null,
  tenant_id text not null);
create index if not exists points_by_document on {schema}.points (document_id);
"""

# A point is a reference x its document x one of the document's chunks x that chunk's vector.
_JOIN = """
select r.tenant_id, c.document_id, d.modality, d.mime_type, r.meta, r.referenced_at,
       c.chunk_id, c.chunk_index, c.snippet, c.term_ids, c.term_counts,
       v.model_version, v.vector
from {schema}.chunks c
join {schema}.documents d on d.document_id = c.document_id
join {schema}.refs r on r.document_id = c.document_id
join {schema}.vectors v on v.atom_id = c.chunk_id
"""


@dataclass(frozen=True)
class Document:
    document_id: str
    modality: str
    mime_type: str
    event_id: str


@dataclass(frozen=True)
class Reference:
    tenant_id: str
    document_id: str
    meta: Meta
    referenced_at: datetime
    event_id: str


@dataclass(frozen=True)
class Vector:
    atom_id: str
    model_version: str
    vector: Sequence[float]
    event_id: str


@dataclass(frozen=True)
class ChunkSet:
    """What a chunking leaves: the points now complete, and the chunks the document has."""

    complete: list[IndexedChunk]
    chunk_ids: list[str]


def _indexed(row: asyncpg.Record) -> IndexedChunk:
    terms = SparseVector(tuple(row["term_ids"]), tuple(row["term_counts"]))
    return IndexedChunk(
        tenant_id=row["tenant_id"],
        document_id=row["document_id"],
        modality=row["modality"],
        mime_type=row["mime_type"],
        meta=json.loads(row["meta"]),
        referenced_at=row["referenced_at"],
        chunk=Chunk(row["chunk_id"], row["chunk_index"], row["snippet"], terms),
        model_version=row["model_version"],
        vector=row["vector"],
    )


class JoinStore:
    def __init__(self, pool: asyncpg.Pool, schema: str = SCHEMA) -> None:
        """`schema`: where the join state lives; a search replica keeping a projection of its
        own (Settings.search_replica) has a schema of its own."""
        self._pool = pool
        self._schema = schema
        self._ddl = _DDL.format(schema=schema)
        self._join_sql = _JOIN.format(schema=schema)

    async def setup(self) -> bool:
        """Create the schema; True when a schema of another version was dropped, so the join
        state must be rebuilt from the log."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Replicas starting together would race on the catalog otherwise.
            await conn.execute(f"select pg_advisory_xact_lock(hashtext('{self._schema}.schema'))")
            stale = (
                await conn.fetchval(f"select to_regclass('{self._schema}.chunks') is not null")
                and await self._stored_version(conn) != VERSION
            )
            if stale:
                await conn.execute(f"drop schema {self._schema} cascade")
            await conn.execute(self._ddl)
            if not await conn.fetchval(f"select exists (select from {self._schema}.version)"):
                await conn.execute(f"insert into {self._schema}.version values ($1)", VERSION)
            return bool(stale)

    async def _stored_version(self, conn: Connection) -> int | None:
        """The schema's version; None for a schema from before versions were kept (1)."""
        if not await conn.fetchval(f"select to_regclass('{self._schema}.version') is not null"):
            return None
        return await conn.fetchval(f"select version from {self._schema}.version")  # type: ignore[no-any-return]

    async def add_document(self, document: Document, ref: Reference) -> list[IndexedChunk]:
        """An AtomIngested: the content's row (earliest event wins) and the tenant's reference."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="serializable"):
            await conn.execute(
                f"insert into {self._schema}.documents as d values ($1, $2, $3, $4)"
                " on conflict (document_id) do update set modality = excluded.modality,"
                "  mime_type = excluded.mime_type, event_id = excluded.event_id"
                " where excluded.event_id < d.event_id",
                document.document_id,
                document.modality,
                document.mime_type,
                document.event_id,
            )
            await self._add_reference(conn, ref)
            return await self._join(conn, "c.document_id = $1", document.document_id)

    async def add_reference(self, ref: Reference) -> list[IndexedChunk]:
        """An AtomReferenced: the tenant's reference alone (the content is known already)."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="serializable"):
            await self._add_reference(conn, ref)
            return await self._join(
                conn, "c.document_id = $1 and r.tenant_id = $2", ref.document_id, ref.tenant_id
            )

    async def _add_reference(self, conn: Connection, ref: Reference) -> None:
        # The latest reference of a tenant to a document says what its metadata is now (and
        # one made after a release gives the document back).
        await conn.execute(
            f"insert into {self._schema}.refs as r values ($1, $2, $3, $4, $5)"
            " on conflict (document_id, tenant_id) do update set meta = excluded.meta,"
            "  referenced_at = excluded.referenced_at, event_id = excluded.event_id,"
            "  released = false"
            " where excluded.event_id > r.event_id",
            ref.document_id,
            ref.tenant_id,
            json.dumps(ref.meta),
            ref.referenced_at,
            ref.event_id,
        )

    async def release_reference(self, tenant_id: str, document_id: str, event_id: str) -> None:
        """An AtomReleased: the tenant's reference ends (the row stays as a tombstone, without
        metadata, so an older reference delivered again cannot revive it)."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="serializable"):
            await conn.execute(
                f"insert into {self._schema}.refs as r values ($1, $2, '{{}}', now(), $3, true)"
                " on conflict (document_id, tenant_id) do update set meta = '{}',"
                "  event_id = excluded.event_id, released = true"
                " where excluded.event_id > r.event_id",
                document_id,
                tenant_id,
                event_id,
            )
            await conn.execute(
                f"delete from {self._schema}.points where document_id = $1 and tenant_id = $2",
                document_id,
                tenant_id,
            )

    async def add_chunk_set(
        self, document_id: str, event_id: str, chunks: Sequence[Chunk]
    ) -> ChunkSet:
        """An AtomChunked: the latest chunking of a document replaces any earlier one."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="serializable"):
            newer = await conn.fetchval(
                f"insert into {self._schema}.chunk_sets as s values ($1, $2)"
                " on conflict (document_id) do update set event_id = excluded.event_id"
                " where excluded.event_id > s.event_id returning true",
                document_id,
                event_id,
            )
            if newer:
                await conn.execute(
                    f"delete from {self._schema}.chunks where document_id = $1", document_id
                )
                await conn.executemany(
                    f"insert into {self._schema}.chunks values ($1, $2, $3, $4, $5, $6)",
                    [
                        (
                            document_id,
                            c.atom_id,
                            c.index,
                            c.snippet,
                            list(c.terms.indices),
                            list(c.terms.values),
                        )
                        for c in chunks
                    ],
                )
            chunk_ids: list[str] = [
                row["chunk_id"]
                for row in await conn.fetch(
                    f"select chunk_id from {self._schema}.chunks where document_id = $1",
                    document_id,
                )
            ]
            await conn.execute(
                f"delete from {self._schema}.points where document_id = $1 and chunk_id <> all($2)",
                document_id,
                chunk_ids,
            )
            return ChunkSet(await self._join(conn, "c.document_id = $1", document_id), chunk_ids)

    async def add_vector(self, vector: Vector) -> list[IndexedChunk]:
        """An EmbeddingComputed. The same atom may be embedded twice (it sits in two documents)
        with last-bit differences between batches: the earliest event's vector stays."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="serializable"):
            await conn.execute(
                f"insert into {self._schema}.vectors as v values ($1, $2, $3, $4)"
                " on conflict (atom_id, model_version) do update set vector = excluded.vector,"
                "  event_id = excluded.event_id where excluded.event_id < v.event_id",
                vector.atom_id,
                vector.model_version,
                list(vector.vector),
                vector.event_id,
            )
            await conn.execute(
                f"insert into {self._schema}.model_versions values ($1) on conflict do nothing",
                vector.model_version,
            )
            return await self._join(
                conn,
                "v.atom_id = $1 and v.model_version = $2",
                vector.atom_id,
                vector.model_version,
            )

    async def _join(self, conn: Connection, where: str, *args: str) -> list[IndexedChunk]:
        """`where`: one of the fixed restrictions above, with the values as parameters; released
        references make no points."""
        sql = f"{self._join_sql} where not r.released and ({where})"
        return [_indexed(row) for row in await conn.fetch(sql, *args)]

    async def mark_indexed(self, chunks: Sequence[IndexedChunk]) -> list[IndexedChunk]:
        """Remember that these points are in the store; returns those that were not before."""
        rows = await self._pool.fetch(
            f"insert into {self._schema}.points"
            " select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[])"
            " on conflict do nothing returning point_id::text",
            [c.point_id for c in chunks],
            [c.document_id for c in chunks],
            [c.chunk.atom_id for c in chunks],
            [c.tenant_id for c in chunks],
        )
        new = {row["point_id"] for row in rows}
        return [c for c in chunks if c.point_id in new]

    async def has_indexed_points(self) -> bool:
        """Whether the store has been given any point (by this schema's projection)."""
        return bool(await self._pool.fetchval(f"select exists (select from {self._schema}.points)"))

    async def model_versions(self) -> int:
        """How many models' vectors are indexed (each chunk has a point per model)."""
        return int(await self._pool.fetchval(f"select count(*) from {self._schema}.model_versions"))
