"""gateway: the public REST surface (DESIGN.md §4): /v1 routes over the services' gRPC APIs,
API keys per tenant with roles, RFC 7807 errors, rate limits and quotas, OpenAPI, probes and
metrics.

Light on purpose: the entry points name modules inside the package (`service.py`,
`commands.py`, `tunables.py`), so reading a declaration never loads the whole service."""
