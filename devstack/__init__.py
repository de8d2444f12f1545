"""Local infrastructure for ``make run`` and the tests: an embedded NATS server with
JetStream and an embedded Postgres, both from pip packages, under a data directory."""
