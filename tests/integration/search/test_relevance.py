"""A labelled evaluation on the real corpus: questions written in other words than the
package descriptions they ask about, each with the passages that answer it. Reports MRR@10 of
every mode; hybrid must do at least as well as the better of dense and sparse."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hartonomous.v1 import search_pb2
from tests.integration.search.conftest import Platform
from tests.support.search_projection import A

pytestmark = pytest.mark.asyncio(loop_scope="module")

# (question, package, phrases of the passages that answer it)
LABELLED: list[tuple[str, str, tuple[str, ...]]] = [
    (
        "why is the reference Avro implementation in pure Python so slow?",
        "fastavro",
        ("it takes about 14 seconds to iterate through a file of 10,000 records",),
    ),
    ("which Avro capabilities are not implemented", "fastavro", ("Avro's RPC features",)),
    ("steps to cut a new release and publish it", "fastavro", ("We release both to",)),
    ("how much quicker is this driver than psycopg", "asyncpg", ("faster than psycopg3",)),
    (
        "can I iterate a query result partially with server-side cursors?",
        "asyncpg",
        ("scrollable cursors",),
    ),
    (
        "compilation fails because a C header of the interpreter is missing",
        "grpcio",
        ("Python.h: No such file or directory",),
    ),
    (
        "are bug-fix releases published for every language at once?",
        "grpcio",
        ("patch versions may be specific to only a single language",),
    ),
    (
        "automatically take gradients of ordinary functions, even higher-order ones",
        "jax",
        ("it can take derivatives of derivatives of derivatives",),
    ),
    (
        "batch a function over an array axis instead of writing a loop",
        "jax",
        ("maps a function along array axes",),
    ),
    (
        "spread a computation over thousands of accelerators",
        "jax",
        ("To scale your computations across thousands of devices",),
    ),
    (
        "run the vector database in-process for development without a server",
        "qdrant-client",
        ("run same code in local mode without running Qdrant server",),
    ),
    (
        "produce embeddings on the CPU with an ONNX-based library",
        "qdrant-client",
        ("FastEmbed is a library for creating fast vector embeddings on CPU",),
    ),
    (
        "restrict nearest-neighbour results with a condition on a payload field",
        "qdrant-client",
        ("Search for similar vectors with filtering condition",),
    ),
    (
        "use the client from asyncio coroutines",
        "qdrant-client",
        ("all python client methods are available in async version",),
    ),
    (
        "a protocol library that performs no network input or output itself",
        "h11",
        ("h11 contains no IO code whatsoever",),
    ),
    ("how big is the code base, can I read all of it?", "h11", ("~800 lines-of-code",)),
    (
        "has anyone measured how fast the parser is?",
        "h11",
        ("I haven't benchmarked or profiled it yet",),
    ),
    ("file locking is only cooperative on unix", "portalocker", ("Unix file locks are advisory",)),
    (
        "cap how many worker processes run at the same time",
        "portalocker",
        ("a semaphore to limit concurrent workers", "Limit the number of concurrent workers"),
    ),
    (
        "turn a hostname written in Japanese into its ASCII form",
        "idna",
        ("xn--eckwd4c7c.xn--zckzah",),
    ),
    (
        "why are domain names with pictographs refused?",
        "idna",
        ("Encoding of symbols like emoji is expressly prohibited",),
    ),
    (
        "ship anonymous functions written in a notebook to other processes",
        "cloudpickle",
        ("pickling for **lambda functions**", "Pickling a lambda expression"),
    ),
    (
        "is deserializing payloads from strangers dangerous?",
        "cloudpickle",
        ("only load pickle data from trusted sources",),
    ),
    (
        "remote workers cannot import the module my function lives in",
        "cloudpickle",
        ("the worker processes may not have access to the said module",),
    ),
    (
        "an HTTP client that speaks HTTP/2 and offers an async interface",
        "httpx",
        ("HTTP/1.1 [and HTTP/2 support]",),
    ),
    (
        "which packages does the HTTP client build on",
        "httpx",
        ("The HTTPX project relies on these excellent libraries",),
    ),
    (
        "ways to help the project other than programming",
        "numpy",
        ("the only way to contribute to NumPy",),
    ),
]
MODES = {
    "dense": search_pb2.SEARCH_MODE_DENSE,
    "sparse": search_pb2.SEARCH_MODE_SPARSE,
    "hybrid": search_pb2.SEARCH_MODE_HYBRID,
}


async def mrr_at_10(platform: Platform, mode: int) -> float:
    total = 0.0
    for question, package, phrases in LABELLED:
        relevant = {platform.docs[package].span_with(p).atom_id for p in phrases}
        results = await platform.query(A, question, mode=mode, k=10)
        rank = next((i for i, r in enumerate(results, 1) if r.atom_id in relevant), None)
        total += 0.0 if rank is None else 1.0 / rank
    return total / len(LABELLED)


async def test_hybrid_ranks_at_least_as_well_as_either_mode_alone(
    platform: Platform, record_property: Callable[[str, object], None]
) -> None:
    assert len(LABELLED) >= 20
    mrr = {name: await mrr_at_10(platform, mode) for name, mode in MODES.items()}
    for name, value in mrr.items():
        record_property(f"mrr@10_{name}", round(value, 3))
    print("MRR@10", {name: round(value, 3) for name, value in mrr.items()})
    assert mrr["dense"] > 0.6, mrr  # paraphrases are what embeddings are for
    assert mrr["hybrid"] >= max(mrr["dense"], mrr["sparse"]), mrr
