"""gateway: the public REST surface (DESIGN.md §4): /v1 routes over the services' gRPC APIs,
API keys per tenant with roles, RFC 7807 errors, rate limits and quotas, OpenAPI, probes and
metrics. `service` is what the `hartonomous.services` entry point loads; `tenants` and
`keys_command` are `hartonomous.commands` entry points."""

from services.gateway.commands import keys_command, tenants
from services.gateway.service import GatewayService

service = GatewayService()

__all__ = ["GatewayService", "keys_command", "service", "tenants"]
