"""ooda: the autonomous loop (DESIGN.md §4). Five stage services, each its own consumer group
and entry point (`ooda-observe`, `ooda-orient`, `ooda-decide`, `ooda-act`, `ooda-learn`),
linked only by the `ooda.*` topics; their logic is pure (`domain/`), their wiring shared
(`stages.py`). ooda-decide also serves the loop's API and its read model of every cycle.

Light on purpose: the entry points name modules inside the package."""
