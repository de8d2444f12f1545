"""One snapshot parsed once for every consumer of a process, never confused with another."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.common.contracts import MarketSnapshot
from services.common.decoded import DecodedMessages
from tests.builders import snapshot


def test_the_same_message_is_parsed_once_and_shared() -> None:
    decoded = DecodedMessages(size=2)
    data = snapshot(cycle_id="c1").to_bytes()
    first = decoded.decode(MarketSnapshot, 7, data)
    assert decoded.decode(MarketSnapshot, 7, bytes(data)) is first
    # Another message under the same sequence (a stream made anew) is parsed for itself.
    other = decoded.decode(MarketSnapshot, 7, snapshot(cycle_id="c2").to_bytes())
    assert other.cycle_id == "c2"
    with pytest.raises(ValidationError):
        decoded.decode(MarketSnapshot, 8, b'{"cycle_id": 1}')
