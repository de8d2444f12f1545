"""Messages decoded once per process, however many of its consumers receive them.

A process hosting many agents has one consumer per agent on the same snapshots: each
snapshot would be parsed once per agent (a few milliseconds each for six symbols of
candles). Messages are frozen, so every consumer can be handed the same object. Keyed by
type, stream sequence and the bytes themselves (a stream made anew reuses sequences).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TypeVar

from services.common.contracts import Message

M = TypeVar("M", bound=Message)

RECENT = 16


class DecodedMessages:
    def __init__(self, size: int = RECENT) -> None:
        self._size = size
        self._recent: OrderedDict[tuple[type[Message], int, bytes], Message] = OrderedDict()

    def decode(self, message_type: type[M], sequence: int, data: bytes) -> M:
        """``data`` as ``message_type``; raises pydantic's ValidationError like parsing."""
        key = (message_type, sequence, data)
        found = self._recent.get(key)
        if found is not None:
            self._recent.move_to_end(key)
            assert isinstance(found, message_type)
            return found
        message = message_type.model_validate_json(data)
        self._recent[key] = message
        if len(self._recent) > self._size:
            self._recent.popitem(last=False)
        return message
