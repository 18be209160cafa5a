"""The vendor's spellings of the callback enumerations, and how they fold to canonical values.

Mindful (seed 001, its webhooks and its "Call events and outcomes" reference) spells the same
thing several ways. A value is compared after trimming, lower-casing and turning runs of spaces,
``_`` and ``-`` into one ``_`` (so ``Customer First``, ``customer-first`` and ``customer_first``
are one spelling), then mapped:

====================== ======================================================================
column                 accepted spellings -> canonical value
====================== ======================================================================
``type``               ``asap`` -> asap; ``scheduled`` -> scheduled. Known non-callbacks:
                       ``unknown`` (Mindful's type of every other call), ``hold``,
                       ``chose_hold`` (set aside and counted as ``not_callbacks``)
``outcome``            ``successful``, ``success``, ``succeeded`` -> successful;
                       ``unavailable`` -> unavailable; ``failure``, ``failed`` -> failure;
                       ``canceled``, ``cancelled`` -> canceled; ``abandoned`` -> abandoned;
                       ``other``, ``unknown``, ``not_completed``, ``chose_hold``,
                       ``chose_messaging``, ``text_scheduling`` -> other (Mindful's final
                       outcome categories that the metrics document has no total for)
``first_party_called`` ``agent``, ``agent_first`` -> agent;
                       ``customer``, ``customer_first`` -> customer
``source_type``        the part before any ``:`` (so a Mindful ``source`` such as
                       ``CBWidget:dc4e…`` or ``Phone:852…`` works too): ``voice``,
                       ``phone`` -> voice; ``digital``, ``widget``, ``cbwidget``, ``web``
                       -> digital
====================== ======================================================================

Outcomes and non-callback types not listed are unknown (quarantined by
:mod:`engine.validate.callback_attempts`).

Example:
    >>> pl.select(normalised("first_party_called", "Customer First")).item()
    'customer'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import polars as pl

__all__ = [
    "FIRST_PARTY_SPELLINGS",
    "NOT_CALLBACK_TYPES",
    "OUTCOME_SPELLINGS",
    "SOURCE_TYPE_SPELLINGS",
    "SPELLINGS",
    "TYPE_SPELLINGS",
    "normalised",
    "per_distinct",
    "spelling_key",
]

TYPE_SPELLINGS: Final = {"asap": "asap", "scheduled": "scheduled"}
NOT_CALLBACK_TYPES: Final = ("unknown", "hold", "chose_hold")
OUTCOME_SPELLINGS: Final = {
    **dict.fromkeys(("successful", "success", "succeeded"), "successful"),
    "unavailable": "unavailable",
    **dict.fromkeys(("failure", "failed"), "failure"),
    **dict.fromkeys(("canceled", "cancelled"), "canceled"),
    "abandoned": "abandoned",
    **dict.fromkeys(
        ("other", "unknown", "not_completed", "chose_hold", "chose_messaging", "text_scheduling"),
        "other",
    ),
}
FIRST_PARTY_SPELLINGS: Final = {
    **dict.fromkeys(("agent", "agent_first"), "agent"),
    **dict.fromkeys(("customer", "customer_first"), "customer"),
}
SOURCE_TYPE_SPELLINGS: Final = {
    **dict.fromkeys(("voice", "phone"), "voice"),
    **dict.fromkeys(("digital", "widget", "cbwidget", "web"), "digital"),
}
#: Per enum column of ``callback_attempts``: accepted spelling (folded) -> canonical value.
SPELLINGS: Final[dict[str, dict[str, str]]] = {
    "type": TYPE_SPELLINGS,
    "outcome": OUTCOME_SPELLINGS,
    "first_party_called": FIRST_PARTY_SPELLINGS,
    "source_type": SOURCE_TYPE_SPELLINGS,
}


def spelling_key(expr: pl.Expr, name: str) -> pl.Expr:
    """Trimmed, lower-cased, separators folded to ``_`` (``source_type``: before any ``:``)."""
    text = expr.cast(pl.String).str.strip_chars().str.to_lowercase()
    text = text.str.replace_all(r"[\s_\-]+", "_")
    return text.str.replace(r":.*$", "") if name == "source_type" else text


def per_distinct(column: str, fold: Callable[[pl.Expr], pl.Expr], dtype: pl.DataType) -> pl.Expr:
    """``fold`` of each row of ``column``, computed on the column's distinct values only and
    mapped back to the rows (a lookup, not a regex, per row): the same values as
    ``fold(pl.col(column))`` for any row-wise ``fold``.

    Example:
        >>> rows = pl.DataFrame({"type": ["ASAP", "asap", None, "ASAP"]})
        >>> rows.select(per_distinct("type", lambda e: spelling_key(e, "type"), pl.String()))[
        ...     "type"].to_list()
        ['asap', 'asap', None, 'asap']
    """
    distinct = pl.col(column).unique(maintain_order=True)  # the same order on both sides
    return pl.col(column).replace_strict(distinct, fold(distinct), default=None, return_dtype=dtype)


def normalised(name: str, value: pl.Expr | str) -> pl.Expr:
    """``value`` (text in any accepted spelling) as the canonical value of enum column ``name``.

    Unrecognised spellings become null.

    Example:
        >>> pl.select(normalised("outcome", "Not Completed")).item()
        'other'
    """
    spellings = SPELLINGS[name]
    expr = pl.lit(value, pl.String) if isinstance(value, str) else value
    return spelling_key(expr, name).replace_strict(spellings, default=None, return_dtype=pl.String)
