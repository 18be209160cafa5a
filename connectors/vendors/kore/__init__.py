"""connectors.vendors.kore."""
