"""engine.report."""
