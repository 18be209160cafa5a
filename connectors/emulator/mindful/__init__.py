"""connectors.emulator.mindful."""
