"""connectors.vendors.dixa."""
