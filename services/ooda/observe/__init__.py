"""ooda-observe: telemetry windows → observations of changed metrics (services/ooda/domain/observe.py)."""
