from __future__ import annotations

import pytest

from services.inference.models.minilm import MiniLM, load_minilm


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    """The real model, loaded once: weights, tokenizer and version hash take seconds."""
    return load_minilm()
