"""Below the client, at the bytes: a response body read under its cap and deadline and its
``Content-Encoding`` undone a bounded step at a time (:mod:`connectors.wire.body`), parsed as
JSON with its depth and numbers checked (:mod:`connectors.wire.jsonbody`), the proxy a client
may use (:mod:`connectors.wire.proxy`), and the one rule for a count's digits
(:mod:`connectors.wire.digits`). :mod:`connectors.http` is their one user (and paging reads
counts by the same rule)."""
