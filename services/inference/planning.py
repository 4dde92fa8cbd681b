"""Static-shape model calls: which padded (rows, length) shapes exist, and how a set of
texts is cut into calls of those shapes at the least cost.

Shared by the micro-batcher and `MiniLM.encode`, so both pad the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from services.inference.models.tokenizer import pad_batch

EmbedFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(input_ids, attention_mask) of one padded shape -> float32 [batch, dim] unit rows."""

# Steps of 4 tokens up to 64, where most sentences are, 8 up to 128, then coarser: with a
# full queue the padding costs about 5% of the work where steps of 8 cost 10% and the
# older 16-24-32-48-64 steps 13%. Each length adds one compiled shape per call size.
DEFAULT_LENGTH_BUCKETS = (*range(16, 64, 4), *range(64, 129, 8), 160, 192, 224, 256)
# Rows per model call. Calls of 24-32 sentences keep the matmuls at their best rate on a
# 2-core CPU (measured at 40 tokens: 176 GFLOP/s with 32 rows, 163 with 64, 155 with 4),
# and 24 spares a run of 17-24 texts the padding to 32. A batch larger than the largest
# call size (the queue under load) is split into several calls.
CALL_SIZES = (1, 2, 4, 8, 16, 24, 32)
Shape = tuple[int, int]
"""(batch size, sequence length) of one model call."""


def call_sizes(max_batch_size: int) -> tuple[int, ...]:
    """The rows per model call a batch of up to max_batch_size texts may use: CALL_SIZES
    below the smaller of max_batch_size and the largest call size, then that one itself."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    largest = min(max_batch_size, CALL_SIZES[-1])
    return (*(size for size in CALL_SIZES if size < largest), largest)


def pick_bucket(n: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds n (buckets ascending)."""
    for bucket in buckets:
        if n <= bucket:
            return bucket
    raise ValueError(f"{n} exceeds the largest bucket {buckets[-1]}")


# The cost of one model call of shape (batch, seq_len) in token-equivalents: a fixed cost
# per call, then per-token work that grows with the sequence (attention). Measured on a
# 2-core CPU (least squares over 1-32 rows x 16-128 tokens, within 16%): a call costs
# ~2.8 ms, as much as ~25 tokens, and a token in a 128-long sequence costs ~1.2x one in a
# 32-long one. Only the ranking of plans depends on these.
CALL_OVERHEAD_TOKENS = 25.0
ATTENTION_SPAN = 700.0


def call_cost(shape: Shape) -> float:
    batch, seq_len = shape
    return CALL_OVERHEAD_TOKENS + batch * seq_len * (1 + seq_len / ATTENTION_SPAN)


def plan_calls(
    lengths: Sequence[int], call_rows: Sequence[int], length_buckets: Sequence[int]
) -> list[tuple[Shape, list[int]]]:
    """The cheapest split of texts (given their token counts) into padded model calls:
    [(shape, indices of the texts in it)], shorter texts first.

    Each call holds a run of texts adjacent in length order (mixing lengths across calls
    only pads more), so dynamic programming over the cut points of the sorted list finds
    the optimum in O(len(lengths) * max batch size).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    max_rows = call_rows[-1]
    rows_for = [0, *(pick_bucket(n, call_rows) for n in range(1, max_rows + 1))]
    best = [0.0] + [float("inf")] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        seq_len = pick_bucket(lengths[order[end - 1]], length_buckets)
        for start in range(max(0, end - max_rows), end):
            cost = best[start] + call_cost((rows_for[end - start], seq_len))
            if cost < best[end]:
                best[end], cut[end] = cost, start
    calls: list[tuple[Shape, list[int]]] = []
    end = len(order)
    while end:
        start = cut[end]
        rows = order[start:end]
        seq_len = pick_bucket(lengths[rows[-1]], length_buckets)
        calls.append(((rows_for[len(rows)], seq_len), rows))
        end = start
    return calls[::-1]


def run_calls(
    token_ids: Sequence[Sequence[int]],
    calls: Sequence[tuple[Shape, list[int]]],
    embed_for: Callable[[Shape], EmbedFn],
    dim: int,
) -> np.ndarray:
    """Pad each planned call and embed it: float32 [len(token_ids), dim], in input order."""
    out = np.empty((len(token_ids), dim), dtype=np.float32)
    for (batch, seq_len), rows in calls:
        ids, mask = pad_batch([token_ids[i] for i in rows], seq_len, batch)
        out[rows] = embed_for((batch, seq_len))(ids, mask)[: len(rows)]
    return out
