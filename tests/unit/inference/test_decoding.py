"""The decoder's serving engine: continuous batching over fixed slots, seeded sampling that
reproduces, stop strings, cancellation that frees a slot, a bounded queue, a context limit,
and no compilation after warm-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hartonomous.modelfiles import smollm2_gguf
from services.inference.decoding import (
    Busy,
    ContextTooLong,
    Engine,
    Finished,
    Generation,
    Step,
)
from services.inference.models.llama_model import LlamaModel, load_gguf
from services.inference.sampling import SamplingParams
from tests.support.compiles import count_compiles

SLOTS, QUEUE = 2, 3


@pytest.fixture(scope="module")
def smollm2() -> LlamaModel:
    return load_gguf(smollm2_gguf())


@pytest.fixture
async def engine(smollm2: LlamaModel) -> AsyncIterator[Engine]:
    engine = Engine(smollm2, slots=SLOTS, cache_len=128, max_queue=QUEUE)
    await engine.warmup()
    yield engine
    await engine.aclose()


def chat(engine: Engine, text: str) -> list[int]:
    tokenizer = engine.model.tokenizer
    return tokenizer.encode(tokenizer.render([{"role": "user", "content": text}]))


async def finished(generation: Generation) -> Finished:
    async for event in generation.stream():
        if isinstance(event, Finished):
            return event
    raise AssertionError("the stream ended without Finished")


async def admitted(generations: list[Generation]) -> None:
    """Wait until each holds a slot: its first token is out."""
    for generation in generations:
        assert isinstance(await generation.events.get(), Step)


async def test_concurrent_requests_share_the_batch_and_seeds_reproduce(engine: Engine) -> None:
    sampled = SamplingParams(temperature=0.8, top_p=0.9, top_k=40, seed=7, max_tokens=12)
    prompts = [chat(engine, q) for q in ("Name a fruit.", "Name a color.", "Name a city.")]
    with count_compiles() as compiles:
        first = await asyncio.gather(*(finished(engine.submit(p, sampled)) for p in prompts))
        again = await finished(engine.submit(prompts[0], sampled))
        greedy = SamplingParams(temperature=0, max_tokens=8)
        alone = await finished(engine.submit(prompts[1], greedy))
        beside = await asyncio.gather(
            finished(engine.submit(prompts[1], greedy)),
            finished(engine.submit(prompts[2], sampled)),
        )
    assert compiles == []  # three requests on two slots: one waited, joined, nothing compiled
    assert again.tokens == first[0].tokens and again.text == first[0].text
    assert beside[0].tokens == alone.tokens  # what shares the batch changes nothing
    assert all(
        f.completion_tokens >= 1 and f.prompt_tokens == len(p)
        for f, p in zip(first, prompts, strict=True)
    )


async def test_stop_strings_end_the_answer_before_them(engine: Engine) -> None:
    greedy = SamplingParams(temperature=0, max_tokens=40)
    full = await finished(engine.submit(chat(engine, "Count from 1 to 9, one per line."), greedy))
    assert "3" in full.text
    cut = SamplingParams(temperature=0, max_tokens=40, stop=("3",))
    stopped = await finished(engine.submit(chat(engine, "Count from 1 to 9, one per line."), cut))
    assert stopped.reason == "stop" and stopped.text == full.text[: full.text.index("3")]


async def test_a_cancelled_generation_frees_its_slot(engine: Engine) -> None:
    long = SamplingParams(temperature=0, max_tokens=80)
    running = [engine.submit(chat(engine, f"Tell a long story about {x}."), long) for x in "ab"]
    await admitted(running)
    assert engine.load() == (SLOTS, 0)
    running[0].cancel()
    done = await finished(running[0])
    assert done.reason == "cancelled" and done.completion_tokens < 80
    quick = await finished(engine.submit(chat(engine, "Hi"), SamplingParams(max_tokens=2)))
    assert quick.completion_tokens <= 2
    running[1].cancel()
    await finished(running[1])


async def test_limits_are_clear_errors(engine: Engine) -> None:
    with pytest.raises(ContextTooLong, match="exceed the context of 128 tokens"):
        engine.submit(list(range(100)), SamplingParams(max_tokens=29))
    long = SamplingParams(temperature=0, max_tokens=60)
    started = [engine.submit(chat(engine, "Describe the sea."), long) for _ in range(SLOTS)]
    await admitted(started)
    started += [engine.submit(chat(engine, "Describe a hill."), long) for _ in range(QUEUE)]
    with pytest.raises(Busy, match="2 sequences are running and 3 waiting"):
        engine.submit(chat(engine, "One more."), long)
    for generation in started:
        generation.cancel()
    await asyncio.gather(*(finished(g) for g in started))
