"""The simulator's position and checkpoint as JSON, for the market's state bucket (pure).

The position (seed, symbols, start, minutes walked) is about 150 bytes, saved with every
tick. The checkpoint is the walk's generator states at one kept step, about 25 KB, saved
once a simulated day. Floats and the generator words round-trip exactly, so a walk
resumed from them is the walk that never stopped.
"""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.market.source import JsonObject, PositionMismatch
from services.market.walk import WalkerState, WalkState

# random.Random's state: a version, the Mersenne Twister's 624 words plus its index, and
# the second value of the last Gaussian pair.
_WORDS = 625
_PACKING = struct.Struct(f"<{_WORDS}I")


class _Saved(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SimulatorPosition(_Saved):
    seed: int
    symbols: tuple[str, ...]
    start: AwareDatetime
    minutes: int = Field(ge=0)


class SavedRandom(_Saved):
    version: int
    words: str  # base64 of the 625 words, little-endian
    gauss_next: float | None

    @classmethod
    def of(cls, state: tuple[object, ...]) -> SavedRandom:
        version, words, gauss_next = state
        assert isinstance(version, int) and isinstance(words, tuple)
        assert gauss_next is None or isinstance(gauss_next, float)
        packed = base64.b64encode(_PACKING.pack(*words)).decode("ascii")
        return cls(version=version, words=packed, gauss_next=gauss_next)

    def state(self) -> tuple[object, ...]:
        raw = base64.b64decode(self.words, validate=True)
        if len(raw) != _PACKING.size:
            raise ValueError(f"a generator state has {len(raw)} bytes, not {_PACKING.size}")
        return (self.version, _PACKING.unpack(raw), self.gauss_next)


class SavedWalker(_Saved):
    rng: SavedRandom
    price: float
    close: Decimal
    regime: int
    funding: float
    basis: float


class SimulatorCheckpoint(_Saved):
    seed: int
    symbols: tuple[str, ...]
    start: AwareDatetime
    steps: int = Field(ge=0)
    market: SavedRandom
    walkers: tuple[SavedWalker, ...]

    def walk_state(self) -> WalkState:
        return WalkState(
            steps=self.steps,
            market=self.market.state(),
            walkers=tuple(
                WalkerState(w.rng.state(), w.price, w.close, w.regime, w.funding, w.basis)
                for w in self.walkers
            ),
        )


def encode_checkpoint(position: SimulatorPosition, walk: WalkState) -> JsonObject:
    checkpoint = SimulatorCheckpoint(
        seed=position.seed,
        symbols=position.symbols,
        start=position.start,
        steps=walk.steps,
        market=SavedRandom.of(walk.market),
        walkers=tuple(
            SavedWalker(
                rng=SavedRandom.of(w.rng),
                price=w.price,
                close=w.close,
                regime=w.regime,
                funding=w.funding,
                basis=w.basis,
            )
            for w in walk.walkers
        ),
    )
    return checkpoint.model_dump(mode="json")


def decode_position(data: JsonObject) -> SimulatorPosition:
    try:
        return SimulatorPosition.model_validate(data)
    except ValidationError as exc:
        raise PositionMismatch(f"the saved simulator position is unreadable: {exc}") from exc


def decode_checkpoint(data: JsonObject, position: SimulatorPosition) -> WalkState:
    """The walk state of a checkpoint of the walk at ``position``; ValueError otherwise."""
    checkpoint = SimulatorCheckpoint.model_validate(data)
    walk = (checkpoint.seed, checkpoint.symbols, checkpoint.start)
    if walk != (position.seed, position.symbols, position.start):
        raise ValueError("the checkpoint belongs to another walk")
    if len(checkpoint.walkers) != len(position.symbols):
        raise ValueError("the checkpoint does not have one walker per symbol")
    return checkpoint.walk_state()
