"""ooda-act: approved decisions → ConfigChanged, confirmed by every replica's read-back or
reverted (services/ooda/domain/act.py)."""
