"""connectors.emulator.ujet."""
