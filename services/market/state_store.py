"""The market's state in its JetStream key-value bucket: two keys, read at start-up.

``state`` is the small document written with every change (tick, cycle start, pause,
resume, completion); ``checkpoint`` is a source's large restart aid, written when it
changes (the simulator: once a simulated day). A value that cannot be read is logged in
full and treated as absent, so the market starts rather than crash-loops; it is
overwritten by the next write.
"""

from __future__ import annotations

import json
import logging

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import ValidationError

from services.common import subjects
from services.common.bus import Bus
from services.market.source import JsonObject
from services.market.state import MarketState

log = logging.getLogger(__name__)

STATE_KEY = "state"
CHECKPOINT_KEY = "checkpoint"


class StateStore:
    def __init__(self, bus: Bus, bucket: str = subjects.MARKET_STATE_BUCKET) -> None:
        self._bus = bus
        self._bucket = bucket
        self._kv: KeyValue | None = None

    async def _open(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._bus.key_value(self._bucket)
        return self._kv

    async def _get(self, key: str) -> bytes | None:
        kv = await self._open()
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        return entry.value or None

    async def load(self) -> MarketState | None:
        raw = await self._get(STATE_KEY)
        if raw is None:
            return None
        try:
            return MarketState.model_validate_json(raw)
        except ValidationError as exc:
            log.error(
                "the saved market state in %s/%s is unreadable, starting afresh: %s; it was: %s",
                self._bucket,
                STATE_KEY,
                exc,
                raw.decode("utf-8", "replace"),
            )
            return None

    async def load_checkpoint(self) -> JsonObject | None:
        raw = await self._get(CHECKPOINT_KEY)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            log.warning("the saved source checkpoint is not JSON, ignored: %s", exc)
            return None
        return data if isinstance(data, dict) else None

    async def save(self, state: MarketState) -> None:
        kv = await self._open()
        await kv.put(STATE_KEY, state.model_dump_json().encode())

    async def save_checkpoint(self, data: JsonObject) -> None:
        kv = await self._open()
        await kv.put(CHECKPOINT_KEY, json.dumps(data, separators=(",", ":")).encode())
