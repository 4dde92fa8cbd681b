"""One tenant's points: dense vectors in a memory-mapped file searched exactly, terms in a BM25
index, and a SQLite table (the shard's source of truth) of which slot and which keyword
document each point has, with its payload.

A write is: new vectors to fresh slots (flushed), then one SQLite transaction that points the
rows at them, then the keyword index's commit. A kill at any moment leaves the last committed
transaction: vectors past it are unreferenced, and a keyword index that may lag it (marked
`pending` in the same transaction) is rebuilt from the table on the next open. What the kill
interrupted is written again when the log re-delivers it.

Writes come from one thread at a time; queries from any thread, concurrently with writes. A
query reads the View published when it started, and sees the shard as of that view's
generation: a slot that dies is stamped with the generation that first leaves it out, so an
older view still counts it live (and does not yet see the slot its point moved to), and every
point has exactly one live slot in every view. Dead slots are compacted away into a new
vectors file once they outnumber the live ones: the file switch is one SQLite commit, and the
loser of a crash is removed on open."""

from __future__ import annotations

import array
import contextlib
import json
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.search.domain import DIM, Point, SparseVector, filter_terms
from services.search.vectors.embedded.keywords import KeywordDocument, KeywordIndex
from services.search.vectors.embedded.vectors import VectorFile

_SCHEMA = """
create table if not exists points (
  row integer primary key autoincrement,  -- the point's number for life: keyword docs carry it
  id text not null unique,
  document_id text not null,
  atom_id text not null,
  slot integer not null,                  -- where its vector is in vectors.f32
  payload text not null,
  term_ids blob not null,
  term_counts blob not null);
create index if not exists points_by_document on points (document_id, atom_id);
create table if not exists filter_terms (
  term text not null, row integer not null, primary key (term, row)) without rowid;
create table if not exists meta (key text primary key, value text not null);
"""

BITMAP_KEYS = ("model_version", "modality")
"""Filter keys with few values, matched by in-memory bitmaps over slots (every dense query
names a model version); other keys are looked up in `filter_terms`."""

POINTS_FILE = "points.sqlite3"
FIRST_VECTORS_FILE = "vectors.f32"
COMPACT_MIN_DEAD = 10_000
"""A shard rewrites its vectors without dead slots once they outnumber both this and the live
ones (so the file stays under twice its live size, plus this)."""
COPY_ROWS = 65_536  # vectors copied per write while compacting
ALIVE = np.iinfo(np.int64).max
SQL_BATCH = 500  # rows per `in (...)` list: SQLite's parameter limit is far above


@dataclass(frozen=True)
class View:
    """What a query reads. Appends and deaths update the arrays in place without changing
    what an older view sees: new slots lie past its count, and a death is stamped with a later
    generation than its own. A grown file or a compaction replaces the arrays, in a new view."""

    slots: int
    generation: int
    slot_row: npt.NDArray[np.int64]  # the row a slot holds (-1: none since the view was loaded)
    dies_at: npt.NDArray[np.int64]  # the first generation a slot is dead in (ALIVE: none yet)
    bitmaps: dict[str, npt.NDArray[np.bool_]]
    matrix: npt.NDArray[np.float32]

    def live(self) -> npt.NDArray[np.bool_]:
        """Which of the view's slots hold a point as of its generation (one slot per point)."""
        alive: npt.NDArray[np.bool_] = self.dies_at[: self.slots] > self.generation
        return alive


@dataclass(frozen=True)
class Change:
    """A point of an upsert that the shard does not hold as given."""

    point: Point
    row: int
    slot: int
    payload: str
    blobs: tuple[bytes, bytes]
    filters: list[str]
    old: Stored | None


@dataclass(frozen=True)
class Stored:
    row: int
    slot: int
    payload: str
    term_ids: bytes
    term_counts: bytes


def _unit(vector: Sequence[float]) -> npt.NDArray[np.float32]:
    unit: npt.NDArray[np.float32] = _unit_rows(np.asarray([vector], np.float32))[0]
    return unit


def _unit_rows(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.where(norms > 0, norms, 1)).astype(np.float32, copy=False)


def _payload_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def _term_blobs(terms: SparseVector) -> tuple[bytes, bytes]:
    return array.array("I", terms.indices).tobytes(), array.array("d", terms.values).tobytes()


def _terms(ids: bytes, counts: bytes) -> SparseVector:
    return SparseVector(
        tuple(int(i) for i in np.frombuffer(ids, np.uint32)),
        tuple(float(c) for c in np.frombuffer(counts, np.float64)),
    )


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), SQL_BATCH):
        yield values[start : start + SQL_BATCH]


def _marks(count: int) -> str:
    return ",".join("?" * count)


class Shard:
    def __init__(
        self, directory: Path, tenant_id: str, compact_min_dead: int = COMPACT_MIN_DEAD
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / POINTS_FILE
        self._db = self._connect(path)
        self._db.executescript(_SCHEMA)
        self._db.execute("insert or ignore into meta values ('tenant_id', ?)", (tenant_id,))
        owner = self._meta("tenant_id")
        if owner != tenant_id:
            raise RuntimeError(f"{directory} holds tenant {owner!r}, not {tenant_id!r}")
        self.tenant_id = tenant_id
        self._reader = self._connect(path)
        self._read_lock = threading.Lock()
        self._moving = threading.Lock()  # a compaction renumbers slots: scans wait for it
        self._directory = directory
        self.compact_min_dead = compact_min_dead
        """Retuned live (by the engine, between writes): the next write compacts by it."""
        self._vectors = self._open_vectors()
        self._keywords = KeywordIndex(directory / "keywords")
        # Rows are never reused (AUTOINCREMENT): a keyword document names its point by row.
        last = self._db.execute("select seq from sqlite_sequence where name = 'points'").fetchone()
        self._rows = 0 if last is None else int(last[0])
        self._view = self._load_view(generation=0)
        self._live = int((self._view.slot_row >= 0).sum())
        self._keywords_stale = self._meta("keywords") == "pending"
        self._catch_up_keywords()

    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / POINTS_FILE).exists()

    @staticmethod
    def tenant_of(directory: Path) -> str:
        with contextlib.closing(sqlite3.connect(directory / POINTS_FILE)) as db:
            return str(db.execute("select value from meta where key = 'tenant_id'").fetchone()[0])

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("pragma journal_mode = wal")
        db.execute("pragma synchronous = full")  # a commit is on disk before the write returns
        return db

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("select value from meta where key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _open_vectors(self) -> VectorFile:
        """The vectors file the table names; any other is what a compaction left behind (the
        new file before its commit, or the old one after)."""
        name = self._meta("vectors") or FIRST_VECTORS_FILE
        for stray in self._directory.glob("vectors*.f32"):
            if stray.name != name:
                stray.unlink()
        return VectorFile(self._directory / name, DIM)

    def _load_view(self, generation: int) -> View:
        matrix = self._vectors.matrix
        slot_row = np.full(len(matrix), -1, np.int64)
        dies_at = np.full(len(matrix), ALIVE, np.int64)  # slots past the count are born live
        bitmaps: dict[str, npt.NDArray[np.bool_]] = {}
        for row, slot in self._db.execute("select row, slot from points"):
            slot_row[slot] = row
        slots = int(self._meta("slots") or 0)
        dies_at[:slots][slot_row[:slots] < 0] = 0  # held by no point: dead in every view
        for term, slot in self._db.execute(
            "select f.term, p.slot from filter_terms f join points p on p.row = f.row"
            " where " + " or ".join(f"f.term like '{key}=%'" for key in BITMAP_KEYS)
        ):
            bitmaps.setdefault(term, np.zeros(len(matrix), np.bool_))[slot] = True
        return View(slots, generation, slot_row, dies_at, bitmaps, matrix)

    # -- writes ---------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        self._catch_up_keywords()
        latest = list({point.id: point for point in points}.values())  # ids may repeat
        if not latest:
            return
        stored = self._stored([point.id for point in latest])
        vectors = _unit_rows(np.asarray([point.dense for point in latest], np.float32))
        changes: list[Change] = []
        fresh: list[npt.NDArray[np.float32]] = []
        rows = self._rows
        for point, vector in zip(latest, vectors, strict=True):
            payload, blobs = _payload_json(point.payload), _term_blobs(point.sparse)
            old = stored.get(point.id)
            if old is not None and self._holds(old, vector, payload):
                if (old.term_ids, old.term_counts) == blobs:
                    continue  # a re-delivery or a replay: nothing to write
                slot = old.slot
            else:
                slot = self._view.slots + len(fresh)
                fresh.append(vector)
            if old is None:
                rows += 1
            row = rows if old is None else old.row
            changes.append(
                Change(point, row, slot, payload, blobs, filter_terms(point.payload), old)
            )
        if not changes:
            return
        if fresh:
            self._vectors.write(self._view.slots, np.stack(fresh))
        with self._transaction() as db:
            db.executemany(
                "insert or replace into points (row, id, document_id, atom_id, slot, payload,"
                " term_ids, term_counts) values (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (c.row, c.point.id, c.point.payload["document_id"], c.point.payload["atom_id"],
                     c.slot, c.payload, *c.blobs)
                    for c in changes
                ],
            )  # fmt: skip
            db.executemany(
                "delete from filter_terms where row = ?", [(c.old.row,) for c in changes if c.old]
            )
            db.executemany(
                "insert or ignore into filter_terms values (?, ?)",
                [(term, c.row) for c in changes for term in c.filters],
            )
            db.execute(
                "insert or replace into meta values ('slots', ?)",
                (str(self._view.slots + len(fresh)),),
            )
        self._rows = rows
        moved = [c for c in changes if c.old is None or c.old.slot != c.slot]
        self._publish(
            {c.slot: (c.row, c.filters) for c in moved},
            [c.old.slot for c in moved if c.old is not None],
            self._view.slots + len(fresh),
        )
        self._write_keywords(
            [c.old.row for c in changes if c.old is not None],
            [KeywordDocument(c.row, c.point.sparse, c.filters) for c in changes],
        )
        self._compact_if_worth_it()

    def delete(self, document_id: str, keep_atoms: Sequence[str]) -> None:
        self._catch_up_keywords()
        found = self._db.execute(
            "select row, slot, atom_id from points where document_id = ?", (document_id,)
        ).fetchall()
        keep = set(keep_atoms)
        doomed = [(row, slot) for row, slot, atom_id in found if atom_id not in keep]
        if not doomed:
            return
        with self._transaction() as db:
            for batch in _chunks([row for row, _ in doomed]):
                db.execute(f"delete from points where row in ({_marks(len(batch))})", batch)
                db.execute(f"delete from filter_terms where row in ({_marks(len(batch))})", batch)
        self._publish({}, [slot for _, slot in doomed], self._view.slots)
        self._write_keywords([row for row, _ in doomed], [])
        self._compact_if_worth_it()

    def _holds(self, old: Stored, vector: npt.NDArray[np.float32], payload: str) -> bool:
        """Whether the point's slot still fits it: same vector, same filterable payload."""
        return old.payload == payload and np.array_equal(self._vectors.matrix[old.slot], vector)

    def _stored(self, ids: Sequence[str]) -> dict[str, Stored]:
        found: dict[str, Stored] = {}
        for batch in _chunks(ids):
            for point_id, *rest in self._db.execute(
                "select id, row, slot, payload, term_ids, term_counts from points"
                f" where id in ({_marks(len(batch))})",
                batch,
            ):
                found[point_id] = Stored(*rest)
        return found

    @contextlib.contextmanager
    def _transaction(self, *, keywords_follow: bool = True) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction. `keywords_follow`: the keyword index must commit the same
        change, and until it has, it lags this table (a compaction moves no keywords)."""
        self._db.execute("begin immediate")
        try:
            if keywords_follow:
                self._db.execute("insert or replace into meta values ('keywords', 'pending')")
            yield self._db
        except BaseException:
            self._db.execute("rollback")
            raise
        self._db.execute("commit")

    def _publish(
        self, added: Mapping[int, tuple[int, Sequence[str]]], dead: Sequence[int], slots: int
    ) -> None:
        """Publish the next generation: new slots and deaths are written where the current
        view does not look (past its count, or stamped with the next generation), then the
        view that sees them replaces it."""
        view = self._view
        generation = view.generation + 1
        slot_row, dies_at, bitmaps = view.slot_row, view.dies_at, view.bitmaps
        matrix = self._vectors.matrix
        if len(matrix) > len(slot_row):  # the file grew: grown copies, in the next view
            grow = len(matrix) - len(slot_row)
            slot_row = np.concatenate([slot_row, np.full(grow, -1, np.int64)])
            dies_at = np.concatenate([dies_at, np.full(grow, ALIVE, np.int64)])
            bitmaps = {t: np.concatenate([b, np.zeros(grow, np.bool_)]) for t, b in bitmaps.items()}
        for slot, (row, terms) in added.items():
            slot_row[slot] = row
            for term in terms:
                if term.split("=", 1)[0] in BITMAP_KEYS:
                    if term not in bitmaps:  # a new dict: a reader's view keeps its own
                        bitmaps = {**bitmaps, term: np.zeros(len(slot_row), np.bool_)}
                    bitmaps[term][slot] = True
        dies_at[np.asarray(dead, np.int64)] = generation
        self._view = View(slots, generation, slot_row, dies_at, bitmaps, matrix)
        self._live += len(added) - len(dead)

    def dead_slots(self) -> int:
        """Slots no point holds, waiting for a compaction (read from any thread: during a write
        it may be off by that write's own slots)."""
        return max(0, self._view.slots - self._live)

    def _compact_if_worth_it(self) -> None:
        dead = self._view.slots - self._live
        if dead >= self.compact_min_dead and dead > self._live:
            self._compact()

    def _compact(self) -> None:
        """Copy the live vectors into a new file, then point the rows at it in one commit."""
        with self._moving:
            stored = self._db.execute("select row, slot from points order by slot").fetchall()
            generation = int(self._meta("generation") or 0) + 1
            name = f"vectors-{generation}.f32"
            fresh = VectorFile(self._directory / name, DIM)
            old_slots = np.asarray([slot for _, slot in stored], np.int64)
            for start in range(0, len(stored), COPY_ROWS):
                fresh.write(start, self._vectors.matrix[old_slots[start : start + COPY_ROWS]])
            try:
                with self._transaction(keywords_follow=False) as db:
                    db.executemany(
                        "update points set slot = ? where row = ?",
                        [(slot, row) for slot, (row, _) in enumerate(stored)],
                    )
                    for key, value in (
                        ("vectors", name),
                        ("generation", generation),
                        ("slots", len(stored)),
                    ):
                        db.execute("insert or replace into meta values (?, ?)", (key, str(value)))
            except BaseException:
                fresh.close()
                raise
            old, self._vectors = self._vectors, fresh
            # Readers holding the old view keep the old mapping.
            self._view = self._load_view(self._view.generation + 1)
            old.close()
            old.path.unlink()

    def _write_keywords(self, removed: Sequence[int], added: Sequence[KeywordDocument]) -> None:
        try:
            self._keywords.write(removed, added)
        except BaseException:
            self._keywords_stale = True  # the table has the change; rebuild before the next write
            raise
        self._db.execute("insert or replace into meta values ('keywords', 'synced')")

    def _catch_up_keywords(self) -> None:
        """Rebuild the keyword index from the table when it may lag it."""
        if not self._keywords_stale:
            return
        documents = [
            KeywordDocument(row, _terms(ids, counts), filter_terms(json.loads(payload)))
            for row, payload, ids, counts in self._db.execute(
                "select row, payload, term_ids, term_counts from points"
            )
        ]
        self._keywords.replace_all(documents)
        self._db.execute("insert or replace into meta values ('keywords', 'synced')")
        self._keywords_stale = False

    # -- queries --------------------------------------------------------------------------

    def dense(
        self, vector: Sequence[float], filters: Sequence[str], limit: int
    ) -> list[tuple[int, float]]:
        """(row, cosine) of the best `limit` points matching every filter term, best first."""
        view = self._view
        slots, slot_row, bitmaps, matrix = view.slots, view.slot_row, view.bitmaps, view.matrix
        mask = view.live()
        for term in filters:
            if term.split("=", 1)[0] in BITMAP_KEYS:
                bits = bitmaps.get(term)
                if bits is None:
                    return []
                mask &= bits[:slots]
            else:
                mask &= self._matching(term, view)
        live = np.flatnonzero(mask)
        if not len(live) or limit <= 0:
            return []
        query = _unit(vector)
        # A selective filter scores only its rows; when most rows match, one pass over the
        # matrix is cheaper than gathering them.
        selective = len(live) * 4 < slots
        scores = matrix[live] @ query if selective else (matrix[:slots] @ query)[live]
        want = min(len(live), limit)
        best = np.argpartition(-scores, want - 1)[:want]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(int(slot_row[live[p]]), float(scores[p])) for p in best]

    def _matching(self, term: str, view: View) -> npt.NDArray[np.bool_]:
        """The view's slots of points with this filter term (one not kept as a bitmap)."""
        with self._read_lock:
            found = self._reader.execute(
                "select p.row from filter_terms f join points p on p.row = f.row where f.term = ?",
                (term,),
            ).fetchall()
        # By row, not by slot: a compaction may have moved the slots since the view was taken.
        return np.isin(view.slot_row[: view.slots], np.asarray([row for (row,) in found]))

    def sparse(
        self, terms: SparseVector, filters: Sequence[str], limit: int
    ) -> list[tuple[int, float]]:
        return self._keywords.search(terms, filters, limit)

    def ids(self, rows: Collection[int]) -> dict[int, str]:
        """Each row's point id (rows deleted meanwhile are absent): what fusing rankings needs,
        without decoding the payloads of candidates that do not make the cut."""
        return {row: point_id for row, point_id in self._by_row("id", list(rows))}

    def payloads(self, rows: Sequence[int]) -> dict[int, tuple[str, dict[str, Any]]]:
        """Each row's point id and payload (rows deleted meanwhile are absent)."""
        return {
            row: (point_id, json.loads(payload))
            for row, point_id, payload in self._by_row("id, payload", rows)
        }

    def _by_row(self, columns: str, rows: Sequence[int]) -> list[tuple[Any, ...]]:
        """(row, *columns) of each of `rows` still stored, read under the read lock."""
        found: list[tuple[Any, ...]] = []
        with self._read_lock:
            for batch in _chunks(rows):
                found += self._reader.execute(
                    f"select row, {columns} from points where row in ({_marks(len(batch))})",
                    batch,
                )
        return found

    def count(self) -> int:
        with self._read_lock:
            return int(self._reader.execute("select count(*) from points").fetchone()[0])

    def points_after(self, row: int, limit: int) -> list[tuple[int, Point]]:
        """Up to `limit` points (with their rows) of rows after `row`, in row order: a page of
        a scan that never holds the whole shard in memory."""
        with self._moving, self._read_lock:
            stored = self._reader.execute(
                "select row, id, slot, payload, term_ids, term_counts from points"
                " where row > ? order by row limit ?",
                (row, limit),
            ).fetchall()
            matrix = self._vectors.matrix  # after the read: it holds every slot the read saw
        return [
            (row, Point(point_id, matrix[slot].tolist(), _terms(ids, counts), json.loads(payload)))
            for row, point_id, slot, payload, ids, counts in stored
        ]

    def close(self) -> None:
        self._keywords.close()
        self._vectors.close()
        self._reader.close()
        self._db.close()
