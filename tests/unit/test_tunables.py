"""Tunables are data: each parses only the values it takes, with a reason for the rest; a
process applies a valid change to the code that holds the knob, and ignores an invalid one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hartonomous.tunables import (
    InvalidSetting,
    Kind,
    LiveConfig,
    Risk,
    Tunable,
    UnknownSetting,
    Value,
    catalog,
)

NOW = datetime(2026, 12, 3, tzinfo=UTC)
WAIT = Tunable("demo.wait_ms", Kind.FLOAT, 5.0, "a wait", "demo", "demo", minimum=0, maximum=100)
SIZE = Tunable("demo.size", Kind.INT, 8, "a size", "demo", "demo", Risk.MEDIUM, 1, 256)
MODE = Tunable("demo.mode", Kind.CHOICE, "auto", "a mode", "demo", "m", choices=("off", "auto"))
FLAG = Tunable("demo.flag", Kind.BOOL, False, "a flag", "demo", "f")


@pytest.mark.parametrize(
    ("tunable", "raw", "value"),
    [(WAIT, " 12.5 ", 12.5), (WAIT, "0", 0.0), (SIZE, "256", 256), (MODE, "off", "off"),
     (FLAG, "TRUE", True), (FLAG, "false", False)],
)  # fmt: skip
def test_a_value_in_bounds_parses_to_its_kind(tunable: Tunable, raw: str, value: Value) -> None:
    assert tunable.parse(raw) == value and type(tunable.parse(raw)) is type(value)


@pytest.mark.parametrize(
    ("tunable", "raw", "reason"),
    [(WAIT, "-1", "at least 0"), (WAIT, "101", "at most 100"), (WAIT, "nan", "finite"),
     (WAIT, "soon", "a number"), (SIZE, "2.5", "an integer"), (MODE, "on", "one of off, auto"),
     (FLAG, "yes", "true or false")],
)  # fmt: skip
def test_a_value_out_of_bounds_is_refused_with_its_reason(
    tunable: Tunable, raw: str, reason: str
) -> None:
    with pytest.raises(InvalidSetting, match=reason):
        tunable.parse(raw)


def test_a_default_outside_its_own_bounds_is_a_declaration_error() -> None:
    with pytest.raises(InvalidSetting):
        Tunable("demo.bad", Kind.INT, 0, "bad", "demo", "demo", minimum=1)


def test_values_travel_as_plain_text() -> None:
    assert (WAIT.text(12.5), WAIT.text(5.0), SIZE.text(8), FLAG.text(True)) == (
        "12.5",
        "5",
        "8",
        "true",
    )


async def test_a_change_reaches_the_code_that_holds_the_knob_and_nothing_else() -> None:
    config = LiveConfig({t.key: t for t in (WAIT, SIZE)})
    seen: list[Value] = []

    async def retune(value: Value) -> None:
        seen.append(value)

    assert config.watch(WAIT.key, retune) == 5.0
    assert await config.change(WAIT.key, "7", "user:k1", "slow clients", NOW)
    assert await config.change(WAIT.key, "7", "user:k1", "again", NOW)  # no change: no call
    assert await config.change(SIZE.key, "16", "ooda:d1", "bigger", NOW)
    assert seen == [7.0]
    assert config.held() == {WAIT.key: "7"}  # the watched knob, at its effective value
    setting = config.setting(SIZE.key)
    assert (setting.value, setting.actor, setting.changed_at) == (16, "ooda:d1", NOW)


async def test_an_invalid_change_is_ignored_and_the_value_kept() -> None:
    config = LiveConfig({WAIT.key: WAIT})
    assert not await config.change(WAIT.key, "1e9", "user:k1", "typo", NOW)
    assert not await config.change("demo.nope", "1", "user:k1", "unknown", NOW)
    assert config.value(WAIT.key) == 5.0
    with pytest.raises(UnknownSetting):
        config.value("demo.nope")


def test_the_catalog_holds_every_services_tunables_once() -> None:
    found = catalog()
    assert {"inference.batch.max_wait_ms", "telemetry.interval_s"} <= set(found)
    assert {t.owner for t in found.values()} >= {"inference", "billing", "provenance", "*"}
    assert all(key == t.key for key, t in found.items())
