"""ooda-decide: hypotheses → governed decisions, and the loop's API: pending decisions,
approvals, and every cycle explained (services/ooda/domain/decide.py, cycles.py)."""
