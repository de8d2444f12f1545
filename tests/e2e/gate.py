"""Hold a service's transactions at a chosen row, so a kill lands mid-burst on any machine.

A crash test that waits until "some" rows are applied and then kills the process races the
process: on a fast machine the whole burst may be applied before the kill. A gate removes
the race. A trigger makes each insert that matches a condition wait, inside its own
transaction, for an advisory lock the test holds; the service stops there with everything
before that row committed and that row not. The test kills the service, opens the gate
(the held backends are terminated, so their transactions roll back) and restarts it.
"""

from __future__ import annotations

import asyncpg

# Advisory locks are per database and every test has its own database.
LOCK_KEY = 720_514


class Gate:
    """Inserts into ``table`` for which ``condition`` holds wait until :meth:`open`.

    ``condition`` is a SQL boolean over ``NEW`` and the tables, evaluated after the row is
    inserted (so a ``count(*)`` of the table includes it).
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._triggers: list[tuple[str, str]] = []

    async def close_on(self, table: str, condition: str) -> None:
        if not self._triggers:
            await self._conn.execute(f"SELECT pg_advisory_lock({LOCK_KEY})")
        name = f"test_gate_{table}"
        await self._conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF {condition} THEN PERFORM pg_advisory_xact_lock_shared({LOCK_KEY}); "
            "END IF; RETURN NULL; END $$"
        )
        await self._conn.execute(
            f"CREATE TRIGGER {name} AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
        )
        self._triggers.append((name, table))

    async def holding(self, table: str) -> bool:
        """Whether a transaction is waiting at the gate with an insert into ``table``."""
        held = await self._conn.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.objid = $1 AND NOT l.granted "
            "AND a.query ILIKE $2",
            LOCK_KEY,
            f"%INSERT INTO {table}%",
        )
        return bool(held)

    async def open(self) -> None:
        """Roll back the held transactions, remove the triggers and release the lock."""
        await self._conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND objid = $1 AND NOT granted",
            LOCK_KEY,
        )
        for name, table in self._triggers:
            await self._conn.execute(f"DROP TRIGGER {name} ON {table}")
            await self._conn.execute(f"DROP FUNCTION {name}()")
        self._triggers.clear()
        await self._conn.execute(f"SELECT pg_advisory_unlock({LOCK_KEY})")
