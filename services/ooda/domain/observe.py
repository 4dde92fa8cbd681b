"""observe: telemetry windows → observations. Every number of every window feeds a change
detector; a detected change becomes an ObservationMade with its evidence (baseline, current,
effect, sample counts, the windows it rests on)."""

from __future__ import annotations

from datetime import datetime

from hartonomous.events.ids import derived_event_id
from hartonomous.events.payloads import ObservationMade, Payload, TelemetryRecorded
from services.ooda.domain.detect import Detector, Tuning
from services.ooda.domain.metrics import samples_of
from services.ooda.domain.stage import Out, Stage


class Observe(Stage):
    produces = (ObservationMade,)

    def __init__(self, tuning: Tuning | None = None) -> None:
        super().__init__()
        self.detector = Detector(tuning)

    def on(self, payload: Payload, event_id: str, at: datetime) -> list[Out]:
        if not isinstance(payload, TelemetryRecorded):
            return []
        found = []
        for sample in samples_of(payload, event_id):
            change = self.detector.feed(sample)
            if change is None:
                continue
            observation_id = derived_event_id(event_id, f"observation:{change.metric}")
            observation = ObservationMade(
                observation_id=observation_id,
                service=payload.service,
                metric=str(change.metric),
                metric_name=change.metric.name,
                labels=dict(change.metric.labels),
                direction=change.direction,
                baseline=change.baseline,
                current=change.current,
                effect=change.effect,
                baseline_samples=change.baseline_samples,
                recent_samples=change.recent_samples,
                windows=list(change.sources),
                since=change.since,
                observed_at=change.detected_at,
            )
            found.append(Out(observation, observation_id, observation_id))
        return found
