"""connectors.vendors.mindful."""
