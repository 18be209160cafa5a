"""connectors.vendors."""
