"""The arena's JetStream streams, and who may change them.

Two streams: ``ARENA`` holds every event, ``ARENA_DLQ`` the dead letters. Their limits
(age, size) come from the settings. Beside them, the key-value bucket where the market
keeps its state across restarts.

Changing a stream is an administrator's act. ``python -m services.ledger streams``
creates the streams or brings them to the settings, with the credentials it is given
(``make run`` runs it as the ``admin`` user; docker-compose and Kubernetes run it as a
one-shot step). A service only checks at start-up: it uses the streams as they are,
warns when their limits differ from its settings, and creates a missing one only where
its user is allowed to (a server without authentication, the tests); elsewhere it waits,
not ready, until the administrator's step has run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError

from services.common import subjects
from services.common.bus_errors import TransientError
from services.common.nats_connection import connect_command
from services.common.settings import Settings

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0


@dataclass(frozen=True)
class StreamLimits:
    max_age_seconds: float = 7 * 24 * 3600
    max_bytes: int = -1
    dlq_max_age_seconds: float = 30 * 24 * 3600
    dlq_max_bytes: int = -1

    @classmethod
    def from_settings(cls, settings: Settings) -> StreamLimits:
        return cls(
            max_age_seconds=settings.stream_max_age_seconds,
            max_bytes=settings.stream_max_bytes,
            dlq_max_age_seconds=settings.dlq_max_age_seconds,
            dlq_max_bytes=settings.dlq_max_bytes,
        )


def stream_configs(limits: StreamLimits) -> tuple[StreamConfig, ...]:
    return (
        StreamConfig(
            name=subjects.STREAM,
            subjects=list(subjects.STREAM_SUBJECTS),
            storage=StorageType.FILE,
            max_age=limits.max_age_seconds,
            max_bytes=limits.max_bytes,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        ),
        StreamConfig(
            name=subjects.DLQ_STREAM,
            subjects=[subjects.DLQ_ALL],
            storage=StorageType.FILE,
            max_age=limits.dlq_max_age_seconds,
            max_bytes=limits.dlq_max_bytes,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        ),
    )


def differences(actual: StreamConfig, wanted: StreamConfig) -> list[str]:
    """What of ``wanted`` the server's ``actual`` configuration does not have (empty: same)."""
    found: list[str] = []
    if sorted(actual.subjects or ()) != sorted(wanted.subjects or ()):
        found.append(f"subjects {actual.subjects} (wanted {wanted.subjects})")
    for name in ("max_age", "max_bytes", "duplicate_window"):
        have, want = getattr(actual, name), getattr(wanted, name)
        if have is None or want is None or abs(float(have) - float(want)) > 1e-6:
            found.append(f"{name} {have} (wanted {want})")
    if actual.storage != wanted.storage:
        found.append(f"storage {actual.storage} (wanted {wanted.storage})")
    return found


async def ensure_streams(js: JetStreamContext, limits: StreamLimits, *, update: bool) -> list[str]:
    """Create missing streams and, with ``update``, bring existing ones to ``limits``.

    Returns one line per stream saying what was done. Raises :class:`TransientError` when
    a stream is missing and could not be created (no right to, or JetStream unavailable):
    the caller retries until the administrator's step has created it.
    """
    done: list[str] = []
    for wanted in stream_configs(limits):
        name = wanted.name or ""
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            try:
                await js.add_stream(wanted)
            except BadRequestError:
                # Another process created it between the two calls.
                info = await js.stream_info(name)
            except Exception as exc:
                raise TransientError(
                    f"stream {name} does not exist and could not be created ({exc!r}); "
                    "run `python -m services.ledger streams` with the admin credentials"
                ) from exc
            else:
                done.append(f"{name}: created")
                continue
        changed = differences(info.config, wanted)
        if not changed:
            done.append(f"{name}: up to date")
        elif update:
            await js.update_stream(wanted)
            done.append(f"{name}: updated ({'; '.join(changed)})")
        else:
            log.warning(
                "stream %s differs from the settings: %s; an administrator applies them with "
                "`python -m services.ledger streams`",
                name,
                "; ".join(changed),
            )
            done.append(f"{name}: differs ({'; '.join(changed)})")
    done.append(await _ensure_market_bucket(js))
    return done


async def _ensure_market_bucket(js: JetStreamContext) -> str:
    bucket = subjects.MARKET_STATE_BUCKET
    try:
        await js.key_value(bucket)
    except BucketNotFoundError:
        try:
            # Creating an identical bucket again is harmless: a race between two is fine.
            await js.create_key_value(KeyValueConfig(bucket=bucket, storage=StorageType.FILE))
        except Exception as exc:
            raise TransientError(
                f"bucket {bucket} does not exist and could not be created ({exc!r}); "
                "run `python -m services.ledger streams` with the admin credentials"
            ) from exc
        return f"{bucket}: created"
    return f"{bucket}: exists"


async def apply_streams(settings: Settings) -> list[str]:
    """Create or update the streams with ``settings``' connection (an administrator's)."""
    nc = await connect_command(settings, "streams-admin", retry_seconds=30.0)
    try:
        return await ensure_streams(
            nc.jetstream(), StreamLimits.from_settings(settings), update=True
        )
    finally:
        await nc.close()
