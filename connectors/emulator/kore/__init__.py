"""connectors.emulator.kore."""
