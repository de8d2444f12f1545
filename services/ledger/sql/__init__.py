"""Every SQL statement of the ledger, one module per aggregate, on a connection the caller
owns (and its transaction).

- :mod:`accounts`: ``llm_accounts`` and the account checks that recount it;
- :mod:`positions`: ``positions`` and ``symbol_marks``;
- :mod:`trades`: ``trades`` and ``funding_payments``;
- :mod:`decisions`: ``decisions`` and their chain, ``proposals``, ``rejected_decisions``,
  ``llm_api_calls``, ``verify_checkpoint``;
- :mod:`cycles`: ``cycles``, ``market_data``, and what makes delivery exactly-once
  (``processed_messages``, ``consumer_positions``, ``applied_ticks``);
- :mod:`equity`: ``equity_snapshots`` and their thinning;
- :mod:`curves`: the equity curves' summaries (``equity_curve_*``);
- :mod:`outbox`: ``outbox``;
- :mod:`runs`: what a run of marks reads and writes across the books' tables.

A statement reading several tables lives with the table it is about.
"""

from services.ledger.sql import (
    accounts,
    curves,
    cycles,
    decisions,
    equity,
    outbox,
    positions,
    runs,
    trades,
)

__all__ = [
    "accounts",
    "curves",
    "cycles",
    "decisions",
    "equity",
    "outbox",
    "positions",
    "runs",
    "trades",
]
