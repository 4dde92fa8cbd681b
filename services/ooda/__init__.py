"""ooda: observe, orient, decide, act, learn over telemetry (DESIGN.md §4). Not built yet."""
