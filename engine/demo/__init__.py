"""engine.demo."""
