"""One tenant's BM25 index, kept by tantivy: its statistics (document frequencies, average
length) are the tenant's own, so another tenant's documents never shift its scores.

A document is a point's row number, its terms (each term index written as many times as the
term occurs) and its filter terms ("key=value", matched exactly and never scored)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import tantivy

from services.search.domain import SparseVector

ROW = "row"
TERMS = "terms"
FILTERS = "filters"
WRITER_HEAP = 15_000_000
"""Bytes tantivy buffers before it writes a segment (its minimum): batches are small."""


@dataclass(frozen=True)
class KeywordDocument:
    row: int
    terms: SparseVector
    filters: Sequence[str]


def _words(terms: SparseVector) -> str:
    return "".join(
        f"{index:x} " * round(count)
        for index, count in zip(terms.indices, terms.values, strict=True)
    )


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_integer_field(ROW, stored=False, indexed=True, fast=True)
    builder.add_text_field(TERMS, tokenizer_name="whitespace", index_option="freq")
    builder.add_text_field(FILTERS, tokenizer_name="raw", index_option="basic")
    return builder.build()


class KeywordIndex:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self._schema = _schema()
        self._index = tantivy.Index(self._schema, path=str(path))
        try:
            self._writer = self._index.writer(heap_size=WRITER_HEAP, num_threads=1)
        except ValueError as exc:  # tantivy's writer lock: one writing process per index
            raise RuntimeError(
                f"{path} is open in another process ({exc}); the embedded search store has one"
                " owner per data dir: run several search replicas on a Qdrant server instead"
            ) from exc
        self._searcher = self._index.searcher()

    def write(self, removed_rows: Iterable[int], added: Iterable[KeywordDocument]) -> None:
        """Remove documents by row and add others, as one commit that readers see at once."""
        for row in removed_rows:
            self._writer.delete_documents_by_term(ROW, row)
        for document in added:
            self._writer.add_document(
                tantivy.Document(
                    **{
                        ROW: document.row,
                        TERMS: _words(document.terms),
                        FILTERS: list(document.filters),
                    }
                )
            )
        self._writer.commit()
        self._index.reload()
        self._searcher = self._index.searcher()

    def replace_all(self, documents: Iterable[KeywordDocument]) -> None:
        """Rebuild from scratch (after a crash between a points commit and this index's)."""
        self._writer.delete_all_documents()
        self.write((), documents)

    def search(
        self, terms: SparseVector, filters: Sequence[str], limit: int
    ) -> list[tuple[int, float]]:
        """(row, BM25 score) of the best `limit` documents with any of the terms and every
        filter term, best first."""
        if not terms.indices or limit <= 0:
            return []
        searcher = self._searcher
        should = [
            (
                tantivy.Occur.Should,
                tantivy.Query.term_query(self._schema, TERMS, f"{index:x}", "freq"),
            )
            for index in terms.indices
        ]
        clauses = [(tantivy.Occur.Must, tantivy.Query.boolean_query(should))]
        clauses += [
            (
                tantivy.Occur.Must,
                tantivy.Query.const_score_query(
                    tantivy.Query.term_query(self._schema, FILTERS, term, "basic"), 0.0
                ),
            )
            for term in filters
        ]
        hits = searcher.search(tantivy.Query.boolean_query(clauses), limit, count=False).hits
        rows = searcher.fast_field_values(ROW, [address for _, address in hits])
        return [
            (int(row), float(score))
            for (score, _), row in zip(hits, rows, strict=True)
            if row is not None  # every document has a row; the type allows a missing column
        ]

    def close(self) -> None:
        self._writer.rollback()  # nothing is pending: every write commits
        self._writer.wait_merging_threads()
