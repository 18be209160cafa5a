"""engine.app."""
