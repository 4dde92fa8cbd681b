"""Generation speed: SmolLM2-135M-Instruct served by our continuous-batching JAX decoder
(services/inference/decoding.Engine, slots=8, cache_len=1024, in this process, no HTTP) beside
llama.cpp (llama-cpp-python as pinned in bench/_llama_cpp.py, the shipped Q4_1 GGUF, 2
threads, otherwise its defaults) serving the same token ids. Greedy, the same prompts and
lengths on both sides:

- prefill: one request whose prompt is ~200 tokens, prompt tokens / time to its first token;
- decode, one stream: NEW_TOKENS generated, tokens after the first / time after the first;
- N concurrent streams (STREAMS): all tokens generated / wall time of the whole batch, and
  time to first token p50/p99 from submission (pooled over rounds). Our engine decodes SLOTS
  sequences at once, so at 32 streams 24 wait in its queue; llama-cpp-python serves one
  sequence at a time, so its N requests run one after another and a request's time to first
  token includes waiting behind the ones before it.
- peak RSS: ours from just before the model is loaded (VmHWM reset then; it still counts what
  the process held already, so run this bench alone for that figure), theirs its process's.

Both sides stop at end-of-sequence; the prompts ask for long answers that run past NEW_TOKENS
on both, and any request that ends early is reported on stderr (rates are of tokens actually
generated). llama.cpp runs in a process of its own (its threads and memory apart from JAX's)
and its KV cache is reset before each request: our engine reuses no prompt prefix either.
Our side also detokenizes every step (its stream carries text); theirs yields token ids only.
Rounds alternate which side goes first; rates are medians over REPS rounds.

BENCH_QUICK=1 shrinks rounds and lengths for a smoke run (figures meaningless).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._rss import rss_growth
from bench.common import Metric, median, percentile, write
from hartonomous.modelfiles import smollm2_gguf
from services.inference.decoding import Engine, Finished, Generation
from services.inference.models.llama_model import LlamaModel, load_gguf
from services.inference.sampling import SamplingParams

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 1 if QUICK else 5
NEW_TOKENS = 8 if QUICK else 128
STREAMS = (8, 32)
SLOTS, CACHE_LEN = 8, 1024
THREADS = 2
REPO = Path(__file__).resolve().parents[1]
PEER = f"llama.cpp Q4_1, {THREADS} threads"
SERIAL = "llama.cpp, one at a time"

# Requests that greedy SmolLM2 answers at length (checked: > 128 tokens on both sides).
ASKS = [
    "Write a detailed essay about the history of the Roman Empire.",
    "Explain in detail how a computer processor works, step by step.",
    "Write a long story about a dragon who learns to read.",
    "Describe the water cycle in detail, with examples.",
    "Write a detailed guide to planting a vegetable garden.",
    "Explain the causes and consequences of the French Revolution in detail.",
    "Write a long letter to a friend describing your trip to Japan.",
    "Explain how the internet works, from cables to web pages, in detail.",
]
PASSAGE = (
    "Photosynthesis is the process by which green plants, algae and some bacteria convert light"
    " energy into chemical energy. During this process, carbon dioxide and water are combined,"
    " using the energy of sunlight captured by chlorophyll, to produce glucose and oxygen. The"
    " reaction takes place mainly in the chloroplasts of leaf cells, and it is the source of"
    " nearly all of the oxygen in the atmosphere. It has two stages. In the light-dependent"
    " reactions, which happen in the thylakoid membranes, light splits water molecules, releasing"
    " oxygen and producing the energy carriers ATP and NADPH. In the Calvin cycle, which happens"
    " in the stroma, those carriers drive the fixation of carbon dioxide into three-carbon sugars,"
    " which the plant then builds into glucose, starch and cellulose."
)
PREFILL_ASK = f"Summarize the following text in one paragraph.\n\n{PASSAGE}"

# llama.cpp's side: reads batches (one JSON line each: prompts and max_tokens), serves their
# requests one after another and answers [first token s, end s, tokens] for each, from the
# batch's start; at end of input it prints its peak RSS in KiB (VmHWM).
PEER_PROCESS = """
import json, re, sys, time
from bench._llama_cpp import ensure_llama_cpp, open_model
threads = int(sys.argv[2])
llm = open_model(ensure_llama_cpp(), sys.argv[1], n_threads=threads, n_threads_batch=threads,
                 verbose=False)
eos = llm.token_eos()
print("ready", flush=True)
for line in sys.stdin:
    job, answers, started = json.loads(line), [], time.perf_counter()
    for prompt in job["prompts"]:
        llm.reset()  # no reuse of a cached prompt prefix
        first, count = 0.0, 0
        for token in llm.generate(prompt, temp=0.0):
            if token == eos:
                break
            count += 1
            if count == 1:
                first = time.perf_counter() - started
            if count == job["max_tokens"]:
                break
        answers.append([first, time.perf_counter() - started, count])
    print(json.dumps(answers), flush=True)
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1), flush=True)
"""


@dataclass(frozen=True)
class Request:
    first_s: float  # first token, from the batch's start
    end_s: float
    tokens: int  # generated


class Peer:
    """llama-cpp-python in a child process."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", PEER_PROCESS, str(smollm2_gguf()), str(THREADS)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if (answer := self._answer()) != "ready":
            raise RuntimeError(f"the llama.cpp process answered {answer!r}")

    def _answer(self) -> str:
        assert self._process.stdout is not None
        if not (line := self._process.stdout.readline()):
            raise RuntimeError(f"the llama.cpp process exited ({self._process.wait()})")
        return line.strip()

    def run(self, prompts: list[list[int]], max_tokens: int) -> list[Request]:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"prompts": prompts, "max_tokens": max_tokens}))
        self._process.stdin.write("\n")
        self._process.stdin.flush()
        return [Request(*answer) for answer in json.loads(self._answer())]

    def close(self) -> float:
        """End the process; its peak RSS in MiB."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        peak_kib = int(self._answer())
        self._process.wait()
        return peak_kib / 1024


async def ours(engine: Engine, prompts: list[list[int]], max_tokens: int) -> list[Request]:
    """Every prompt submitted at once; Finished's times are from each one's submission."""
    params = SamplingParams(temperature=0, max_tokens=max_tokens)
    generations = [engine.submit(prompt, params) for prompt in prompts]

    async def finished(generation: Generation) -> Request:
        async for event in generation.stream():
            if isinstance(event, Finished):
                return Request(event.first_token_s, event.total_s, event.completion_tokens)
        raise RuntimeError("a stream ended without Finished")

    return list(await asyncio.gather(*(finished(g) for g in generations)))


def chat(model: LlamaModel, ask: str) -> list[int]:
    return model.tokenizer.encode(model.tokenizer.render([{"role": "user", "content": ask}]))


@dataclass(frozen=True)
class Scenario:
    name: str
    prompts: list[list[int]]
    max_tokens: int


def scenarios(model: LlamaModel) -> list[Scenario]:
    asks = [chat(model, ask) for ask in ASKS]
    return [
        Scenario("prefill", [chat(model, PREFILL_ASK)], 1),
        Scenario("decode", asks[:1], NEW_TOKENS),
        *(Scenario(f"x{n}", [asks[i % len(asks)] for i in range(n)], NEW_TOKENS) for n in STREAMS),
    ]


async def rounds(
    engine: Engine, peer: Peer, plan: list[Scenario]
) -> dict[str, list[list[Request]]]:
    """REPS rounds of every scenario on both sides, which side goes first alternating."""
    runs: dict[str, list[list[Request]]] = {f"{s.name}/{side}": [] for s in plan for side in "ot"}
    for rep in range(REPS):
        for s in plan:
            for side in "ot" if rep % 2 == 0 else "to":
                if side == "o":
                    done = await ours(engine, s.prompts, s.max_tokens)
                else:
                    done = await asyncio.to_thread(peer.run, s.prompts, s.max_tokens)
                runs[f"{s.name}/{side}"].append(done)
                await asyncio.sleep(0.5)  # let the other side's threads go idle
        print(f"round {rep + 1}/{REPS} done", file=sys.stderr, flush=True)
    for key, batches in runs.items():
        short = sum(r.tokens < NEW_TOKENS for b in batches for r in b)
        if short and not key.startswith("prefill"):
            print(f"warning: {key}: {short} requests ended before {NEW_TOKENS}", file=sys.stderr)
    return runs


def decode_rate(batch: list[Request]) -> float:
    (r,) = batch
    return (r.tokens - 1) / (r.end_s - r.first_s)


def aggregate_rate(batch: list[Request]) -> float:
    return sum(r.tokens for r in batch) / max(r.end_s for r in batch)


def report(
    plan: list[Scenario], runs: dict[str, list[list[Request]]], rss: tuple[float, float]
) -> list[Metric]:
    def rate(
        metric: str, scenario: str, of: Callable[[list[Request]], float], peer: str = PEER
    ) -> Metric:
        o, t = (median([of(b) for b in runs[f"{scenario}/{side}"]]) for side in "ot")
        return Metric(metric, "tokens/s", o, peer, t)

    def ttft(metric: str, scenario: str, q: float) -> Metric:
        o, t = (
            1000 * percentile([r.first_s for b in runs[f"{scenario}/{side}"] for r in b], q)
            for side in "ot"
        )
        return Metric(metric, "ms", o, SERIAL, t, higher_is_better=False)

    n_prompt = len(plan[0].prompts[0])
    metrics = [
        rate(f"prefill, {n_prompt}-token prompt", "prefill", lambda b: n_prompt / b[0].first_s),
        rate(f"decode, 1 stream, {NEW_TOKENS} tokens", "decode", decode_rate),
    ]
    for n in STREAMS:
        label = f"{n} streams" + (f" ({n - SLOTS} queued)" if n > SLOTS else "")
        metrics.append(rate(f"aggregate, {label}", f"x{n}", aggregate_rate, SERIAL))
        metrics += [ttft(f"TTFT p{q}, {label}", f"x{n}", q) for q in (50, 99)]
    metrics.append(Metric("peak RSS", "MiB", rss[0], PEER, rss[1], higher_is_better=False))
    return metrics


async def measure() -> list[Metric]:
    with rss_growth() as ours_rss:  # VmHWM from here: the model, its cache, the compiled steps
        model = load_gguf(smollm2_gguf())
        engine = Engine(model, slots=SLOTS, cache_len=CACHE_LEN)
        try:
            await engine.warmup()
            plan = scenarios(model)
            peer = await asyncio.to_thread(Peer)
            try:
                await ours(engine, plan[1].prompts, 2)  # a first call's costs are not a run's
                await asyncio.to_thread(peer.run, plan[1].prompts, 2)
                runs = await rounds(engine, peer, plan)
            finally:
                theirs_rss = await asyncio.to_thread(peer.close)
        finally:
            await engine.aclose()
    print(
        f"our RSS: {ours_rss.baseline_mib:.0f} MiB before loading, peak {ours_rss.peak_mib:.0f}",
        file=sys.stderr,
    )
    return report(plan, runs, (ours_rss.peak_mib, theirs_rss))


def main() -> None:
    path = write("generation", asyncio.run(measure()))
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
