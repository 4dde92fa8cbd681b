"""The control plane's rules: what a change request must hold, and where a value came from."""

from __future__ import annotations

import pytest

from hartonomous.tunables import Kind, Tunable
from services.control.domain import InvalidRequest, checked_change, history_limit, source_of

WAIT = Tunable("demo.wait_ms", Kind.FLOAT, 5.0, "a wait", "demo", "demo", minimum=0, maximum=100)


def test_a_value_is_kept_in_its_canonical_text() -> None:
    assert checked_change(WAIT, " 12.50 ", "slow clients", "user:k1") == "12.5"


@pytest.mark.parametrize(
    ("raw", "reason", "actor", "problem"),
    [
        ("500", "r", "user:k1", "at most 100"),
        ("5", "  ", "user:k1", "needs a reason"),
        ("5", "x" * 2001, "user:k1", "over 2000"),
        ("5", "r", "", "needs an actor"),
    ],
)
def test_a_bad_request_names_its_problem(raw: str, reason: str, actor: str, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        checked_change(WAIT, raw, reason, actor)


def test_a_value_comes_from_its_default_an_operator_or_the_loop() -> None:
    assert [source_of(a) for a in (None, "user:k1", "user:cli-ops", "ooda:d-7")] == [
        "default",
        "operator",
        "operator",
        "ooda",
    ]


def test_history_is_bounded() -> None:
    assert (history_limit(0), history_limit(5)) == (100, 5)
    with pytest.raises(InvalidRequest):
        history_limit(1001)
