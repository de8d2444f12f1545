"""The embedded NATS server's users: one password per user, generated once and kept.

The users and their permissions are the deployment's own (``deploy/nats_users.py``), so
``make run`` is locked down exactly like docker-compose and Kubernetes: every process
connects as its own user, and a process without credentials can do nothing. Passwords
live in ``<data dir>/nats/passwords.env`` (mode 0600), one ``NATS_PASSWORD_<USER>=`` line
each, in the form nats-server's configuration reads them from its environment.
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from deploy.nats_users import ADMIN_USER, TOOLING_USER, NatsUser, render_auth_conf


def new_password() -> str:
    """48 random hex digits after a letter: nats-server reads a value from its environment
    as a config token, and one starting with "-" or made of digits would not be a string."""
    return "p" + secrets.token_hex(24)


class NatsCredentials:
    """Every user's password, read from ``path`` and completed for new users."""

    def __init__(self, path: Path, users: Iterable[NatsUser]) -> None:
        self.path = path
        self.users = tuple(users)
        self._passwords = self._load_or_create()

    def _load_or_create(self) -> dict[str, str]:
        known: dict[str, str] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                name, sep, value = line.partition("=")
                if sep and name.strip():
                    known[name.strip()] = value.strip()
        missing = [u for u in self.users if u.password_variable not in known]
        if missing or not self.path.exists():
            for user in missing:
                known[user.password_variable] = new_password()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Created 0600 before anything is written: no moment where others may read it.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write("".join(f"{k}={v}\n" for k, v in sorted(known.items())))
        self.path.chmod(0o600)
        return known

    def _user(self, name: str) -> NatsUser:
        for candidate in self.users:
            if candidate.name == name:
                return candidate
        raise KeyError(f"no NATS user {name!r}")

    def password(self, user: str) -> str:
        return self._passwords[self._user(user).password_variable]

    def url(self, user: str, host: str, port: int) -> str:
        """``nats://user:password@host:port`` for one user."""
        return f"nats://{quote(user, safe='')}:{quote(self.password(user), safe='')}@{host}:{port}"

    def shell_url(self, user: str, host: str, port: int) -> str:
        """``user``'s URL for a POSIX shell: the password is read from the file when the
        shell runs it, so the line ``make run`` prints shows no secret on the terminal."""
        variable = self._user(user).password_variable
        lookup = f"$(grep {variable}= {shlex.quote(str(self.path))} | cut -d= -f2)"
        return f"nats://{quote(user, safe='')}:{lookup}@{host}:{port}"

    def server_environment(self) -> dict[str, str]:
        """The variables nats-server's configuration reads the passwords from."""
        return {u.password_variable: self._passwords[u.password_variable] for u in self.users}

    def write_server_config(self, path: Path) -> Path:
        """The ``authorization`` block for nats-server (passwords by variable, not inline)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_auth_conf(self.users), encoding="utf-8")
        return path


def connect_hints(credentials: NatsCredentials, host: str, port: int) -> tuple[str, ...]:
    """What ``make run`` prints so a tool (``tooling``) or an operator (``admin``) connects:
    docs/deploy.md quotes these lines, and a test runs its example with the first."""
    return (
        f"custom tools connect read-only as {TOOLING_USER}: "
        f"NATS_URL={credentials.shell_url(TOOLING_USER, host, port)}",
        f"streams and dead letters (python -m services.ledger streams|dlq) as {ADMIN_USER}: "
        f"NATS_URL={credentials.shell_url(ADMIN_USER, host, port)}",
    )
