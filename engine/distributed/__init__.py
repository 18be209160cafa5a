"""engine.distributed: the same tables built on a Ray cluster (docs/scale-out.md)."""
