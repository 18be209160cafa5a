"""engine.tables."""
