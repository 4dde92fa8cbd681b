"""Choosing the next token from a logits row: greedy at temperature 0, else softmax at the
temperature over the top-k tokens, cut to the smallest set whose probability reaches top-p,
drawn with the request's own generator. The same seed and the same logits give the same
tokens, which is what lets a receipt be re-run."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: every token
    seed: int = 0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()


class Sampler:
    def __init__(self, params: SamplingParams) -> None:
        self._params = params
        self._rng = np.random.default_rng(params.seed)

    def choose(self, logits: np.ndarray) -> int:
        p = self._params
        if p.temperature == 0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / p.temperature
        if p.top_k and p.top_k < len(scaled):
            candidates = np.argpartition(-scaled, p.top_k)[: p.top_k]
        else:
            candidates = np.arange(len(scaled))
        if p.top_p < 1.0:  # sorted only when the nucleus needs the order
            candidates = candidates[np.argsort(-scaled[candidates], kind="stable")]
        weights = np.exp(scaled[candidates] - scaled[candidates].max())
        probs = weights / weights.sum()
        if p.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), p.top_p)) + 1
            candidates, probs = candidates[:keep], probs[:keep] / probs[:keep].sum()
        return int(candidates[self._rng.choice(len(candidates), p=probs)])
