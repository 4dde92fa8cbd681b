"""The inference service's tunables (the `hartonomous.tunables` entry point loads TUNABLES)."""

from __future__ import annotations

from hartonomous.tunables import Kind, Risk, Tunable, consumer_batch

MAX_WAIT_MS = "inference.batch.max_wait_ms"
MAX_BATCH_SIZE = "inference.batch.max_batch_size"
STORE_INPUTS = "inference.receipts.store_inputs"

TUNABLES = (
    Tunable(
        key=MAX_WAIT_MS,
        kind=Kind.FLOAT,
        default=5.0,
        minimum=0.0,
        maximum=1000.0,
        description="How long the batcher waits for more texts before it runs a batch, while"
        " another batch is running (an idle model runs a batch at once)",
        owner="inference",
        group="inference.batching",
    ),
    Tunable(
        key=MAX_BATCH_SIZE,
        kind=Kind.INT,
        default=256,
        minimum=1,
        # Every caller in a batch waits for all of it (256 texts: about 1.3 s on 2 cores).
        maximum=256,
        description="Texts per batch at most",
        owner="inference",
        group="inference.batching",
        risk=Risk.MEDIUM,
    ),
    Tunable(
        key=STORE_INPUTS,
        kind=Kind.BOOL,
        default=True,
        description="Keep each generation's input as an atom of the tenant (off: receipts"
        " hold its SHA-256 only, and the generation cannot be re-run)",
        owner="inference",
        group="inference.receipts",
        autonomous=False,
    ),
    consumer_batch("inference", owner="inference", default=200),
)
