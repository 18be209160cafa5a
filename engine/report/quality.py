"""The report's data-quality rendering: the reconciliation as a verdict and plain tables.

:func:`reconcile_html` reads ``reconcile.json`` (``engine.pipeline.checks``): one sentence
saying whether our numbers agree with the vendors' own, a table of the checks with plain
headings, and the differences (the first 200, in a box that scrolls sideways rather than being
cut off). A document of another shape falls back to :func:`json_html`.

Example:
    >>> doc = {"ok": True, "checks": [{"source": "kore", "status": "ok", "compared": 3,
    ...        "differences": 0, "out_of_tolerance": 0}], "differences": []}
    >>> "agree with" in reconcile_html(doc)
    True
"""

from __future__ import annotations

import re
from html import escape
from typing import Any, Final

from engine.report.page import DASH, Cell, fmt_int, table

__all__ = ["json_html", "reconcile_html"]

_MAX_ROWS: Final = 200  #: rows of one reconciliation table shown
_STATUS: Final = {
    "ok": ("agree", "ok"),
    "within_tolerance": ("within tolerance", "ok"),
    "out_of_tolerance": ("out of tolerance", "bad"),
}
_CHECK_HEAD: Final = ("Source", "What is compared", "Result", "Window (UTC)", "Values compared",
                      "Differences", "Beyond tolerance", "Note")  # fmt: skip
_DIFF_HEAD: Final = {"source": "Source", "interval_start_utc": "Interval (UTC)",
                     "queue_id": "Queue", "channel": "Channel", "field": "Field", "ours": "Ours",
                     "theirs": "Theirs", "diff": "Ours - theirs",
                     "within_tolerance": "Within tolerance", "presence": "Present in"}  # fmt: skip


def _scalar(value: Any) -> Cell:
    if isinstance(value, bool):
        return ("✓ yes", "ok") if value else ("✗ no", "bad")
    if value is None:
        return (DASH, "na")
    if isinstance(value, int):
        return fmt_int(value)
    return str(value)


def json_html(value: Any) -> str:
    """Any JSON value as nested tables (lists of objects as tables, at most 200 rows each).

    Example:
        >>> "<td>ok</td>" in json_html({"ok": True, "rows": [{"field": "offered", "diff": 1}]})
        True
    """
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        cols = list(dict.fromkeys(k for v in value for k in v))
        rows = [[_scalar(v.get(c)) for c in cols] for v in value[:_MAX_ROWS]]
        cut = len(value) > _MAX_ROWS
        note = f"<p>The first {_MAX_ROWS} of {len(value):,} rows.</p>" if cut else ""
        return f'<div class="scroll">{table(cols, rows)}</div>{note}'
    if not isinstance(value, dict):
        cell = _scalar(value)
        return f"<p>{escape(cell if isinstance(cell, str) else cell[0])}</p>"
    flat = [[k, _scalar(v)] for k, v in value.items() if not isinstance(v, dict | list)]
    out = table(["Field", "Value"], flat) if flat else ""
    for key, v in value.items():
        if isinstance(v, dict | list):
            out += f"<h4>{escape(str(key))}</h4>" + json_html(v)
    return out


def _plain(text: Any) -> str:
    """A check's description without internal reference names (``(seed 000)``)."""
    return re.sub(r"\s*\(seed \d+\)", "", str(text or "")).strip()


def _window(c: dict[str, Any]) -> str:
    lo, hi = str(c.get("window_start") or ""), str(c.get("window_end") or "")
    return f"{lo[:16].replace('T', ' ')} to {hi[:16].replace('T', ' ')}" if lo else DASH


def reconcile_html(doc: Any) -> str:
    """``reconcile.json`` as a verdict, a checks table and a differences table (see above)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), list):
        return json_html(doc)
    checks = [c for c in doc["checks"] if isinstance(c, dict)]
    diffs = [d for d in doc.get("differences") or [] if isinstance(d, dict)]
    ok = bool(doc.get("ok"))
    verdict = (
        f"Our numbers agree with the vendors' own in {len(checks)} check(s)"
        + (" (differences within tolerance)." if diffs else ".")
        if ok
        else "Our numbers differ from a vendor's own beyond tolerance: see the differences below."
    )
    rows: list[list[Cell]] = []
    for c in checks:
        status = str(c.get("status", ""))
        label, cls = _STATUS.get(status, (status.replace("_", " ") or DASH, "na"))
        rows.append(
            [
                str(c.get("source", "")),
                _plain(c.get("compares")),
                (label, cls),
                _window(c),
                _scalar(c.get("compared")),
                _scalar(c.get("differences")),
                _scalar(c.get("out_of_tolerance")),
                _plain(c.get("note")) or DASH,
            ]
        )
    out = f'<p class="verdict {"ok" if ok else "bad"}">{escape(verdict)}</p>'
    out += f'<div class="scroll">{table(_CHECK_HEAD, rows, table_id="reconcile-checks")}</div>'
    if not diffs:
        return out + "<p>No differences.</p>"
    cols = [c for c in _DIFF_HEAD if any(c in d for d in diffs)]
    cols += [c for c in dict.fromkeys(k for d in diffs for k in d) if c not in cols]
    body = [[_scalar(d.get(c)) for c in cols] for d in diffs[:_MAX_ROWS]]
    note = (
        f"<p>The first {_MAX_ROWS} of {len(diffs):,} differences.</p>"
        if len(diffs) > _MAX_ROWS
        else ""
    )
    head = [_DIFF_HEAD.get(c, c) for c in cols]
    return out + f'<h4>Differences</h4><div class="scroll">{table(head, body)}</div>{note}'
