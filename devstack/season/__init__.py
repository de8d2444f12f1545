"""``python -m devstack season``: replay history through whole arenas, several runs at once.

Each run is an arena of its own (its own NATS, Postgres, gateway and metrics ports, in a
temporary folder), started as ``make run`` starts one with ``MARKET_SOURCE=replay:<data>``
and the run's seed; when the data is played out, ``verify`` checks the books, the ledger's
tables and the decision log are exported to ``<out>/run-<k>/``, the run's figures go to
``<out>/summary.json``, and the arena is stopped and removed.
"""
