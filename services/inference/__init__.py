"""inference: embeddings with all-MiniLM-L6-v2 in JAX (DESIGN.md §4), over gRPC and for every
text atom and chunk on the log. `service` is what the `hartonomous.services` entry point loads."""

from services.inference.service import InferenceService

service = InferenceService()

__all__ = ["InferenceService", "service"]
