"""connectors.emulator.dixa."""
