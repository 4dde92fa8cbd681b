"""The loop's own settings (the `hartonomous.tunables` entry point loads TUNABLES): tunables like
any other, set through the same API, but only by an operator: the loop never changes them."""

from __future__ import annotations

from hartonomous.tunables import Kind, Risk, Tunable

MODE = "ooda.mode"
MANUAL_HOLD_S = "ooda.manual_hold_s"
COOLDOWN_S = "ooda.cooldown_s"
HOURLY_BUDGET = "ooda.hourly_budget"
DECISION_TTL_S = "ooda.decision_ttl_s"
READBACK_TIMEOUT_S = "ooda.readback_timeout_s"
EVALUATION_S = "ooda.evaluation_s"
MIN_BASELINE_SAMPLES = "ooda.min_baseline_samples"


def _setting(
    key: str,
    kind: Kind,
    default: int | float | str,
    description: str,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Tunable:
    return Tunable(
        key=key,
        kind=kind,
        default=default,
        description=description,
        owner="ooda",
        group="ooda",
        risk=Risk.HIGH,
        autonomous=False,
        minimum=minimum,
        maximum=maximum,
        choices=("off", "advise", "auto") if kind is Kind.CHOICE else (),
    )


TUNABLES = (
    _setting(
        MODE,
        Kind.CHOICE,
        "auto",
        "off: the loop only observes; advise: every decision waits for an admin; auto: low-risk"
        " changes are applied, the others wait for an admin",
    ),
    _setting(
        MANUAL_HOLD_S,
        Kind.FLOAT,
        3600.0,
        "Seconds after an operator's change during which the loop only proposes changes to that knob",
        minimum=0,
        maximum=7 * 86400,
    ),
    _setting(
        COOLDOWN_S,
        Kind.FLOAT,
        300.0,
        "Seconds the loop leaves a knob alone after changing it (a playbook may ask for longer)",
        minimum=0,
        maximum=86400,
    ),
    _setting(
        HOURLY_BUDGET,
        Kind.INT,
        4,
        "Changes the loop makes to one knob per hour at most",
        minimum=0,
        maximum=60,
    ),
    _setting(
        DECISION_TTL_S,
        Kind.FLOAT,
        900.0,
        "Seconds a decision waits for an admin before it expires",
        minimum=10,
        maximum=7 * 86400,
    ),
    _setting(
        READBACK_TIMEOUT_S,
        Kind.FLOAT,
        60.0,
        "Seconds every live replica has to report a change's new value before it is reverted",
        minimum=5,
        maximum=3600,
    ),
    _setting(
        EVALUATION_S,
        Kind.FLOAT,
        0.0,
        "Seconds after a confirmed change before its outcome is judged, for every playbook"
        " (0: each playbook's own evaluation window)",
        minimum=0,
        maximum=86400,
    ),
    _setting(
        MIN_BASELINE_SAMPLES,
        Kind.INT,
        60,
        "Telemetry windows of a metric's history before the loop judges it (60: five minutes of"
        " 5 s windows); fewer judge sooner, from a noisier baseline",
        minimum=5,
        maximum=180,
    ),
)
