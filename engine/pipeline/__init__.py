"""engine.pipeline."""
