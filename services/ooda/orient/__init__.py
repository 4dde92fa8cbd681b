"""ooda-orient: observations → hypotheses from the playbooks (services/ooda/domain/orient.py)."""
