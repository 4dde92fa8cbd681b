"""ooda-learn: confirmed actions → outcomes and updated priors (services/ooda/domain/learn.py)."""
