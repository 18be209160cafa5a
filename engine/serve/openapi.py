"""What the OpenAPI description of ``serve`` says of the routes that read their input
themselves (:mod:`engine.serve.app`): the metrics route's query parameters and the Contact
Volume route's JSON body, with the page size's bounds.

Example:
    >>> KORE_BODY["requestBody"]["content"]["application/json"]["schema"]["required"]
    ['orgId', 'toTimeStamp']
"""

from __future__ import annotations

from typing import Any

__all__ = ["KORE_BODY", "MAX_LIMIT", "METRICS_PARAMETERS"]

MAX_LIMIT = 1000  #: the largest Contact Volume page (a larger ``limit`` is capped)
METRICS_PARAMETERS: dict[str, Any] = {
    "parameters": [
        {"name": n, "in": "query", "required": n in {"timeBegin", "timeEnd"},
         "schema": {"type": "string"}}
        for n in ("timeBegin", "timeEnd", "callTargetId", "firstPartyCalled", "sourceType", "type")
    ]
}  # fmt: skip
KORE_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["orgId", "toTimeStamp"],
                    "properties": {
                        "orgId": {"type": "string"},
                        "fromTimeStamp": {"type": "string", "format": "date-time"},
                        "toTimeStamp": {"type": "string", "format": "date-time"},
                        "skip": {"type": "integer", "minimum": 0, "default": 0},
                        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    },
                }
            }
        }
    }
}
