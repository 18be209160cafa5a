"""engine.validate."""
