"""connectors.vendors.ujet."""
