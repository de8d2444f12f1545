"""What a season is: the data, the line-up, how many runs, and where the results go."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DEFAULT_RUN_TIMEOUT_SECONDS = 6 * 3600


@dataclass(frozen=True)
class Season:
    data: Path
    out: Path
    lineup: Path
    runs: int = 1
    seed: int = 42
    parallel: int = 1
    start: date | None = None
    end: date | None = None
    """The last day replayed (inclusive)."""
    symbols: tuple[str, ...] = ()
    """Empty: the arena's own ``ARENA_SYMBOLS``."""
    run_timeout: float = DEFAULT_RUN_TIMEOUT_SECONDS
    only_run: int | None = None
    """Play this run alone (a Kubernetes Job's pod: its completion index)."""
    database_server: str | None = None
    """A Postgres server URL where each run gets a database of its own (dropped first if
    it exists); None: each run starts its own embedded Postgres."""

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ValueError("--runs must be at least 1")
        if self.parallel < 1:
            raise ValueError("--parallel must be at least 1")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"--to {self.end} is before --from {self.start}")
        if self.only_run is not None and not 0 <= self.only_run < self.runs:
            raise ValueError(f"--only-run {self.only_run} is not one of the {self.runs} runs")

    @property
    def run_numbers(self) -> range:
        """The runs this invocation plays."""
        if self.only_run is not None:
            return range(self.only_run, self.only_run + 1)
        return range(self.runs)

    def database_of(self, run: int) -> str:
        """Run ``run``'s database name on ``database_server``: the season's folder names it,
        so two seasons on one server never share one."""
        digest = hashlib.sha256(str(self.out.resolve()).encode()).hexdigest()[:10]
        return f"season_{digest}_run{run}"

    def seed_of(self, run: int) -> int:
        """Run ``k`` uses seed S+k: the random baseline and sampling models differ."""
        return self.seed + run

    def run_dir(self, run: int) -> Path:
        return self.out / f"run-{run}"

    @property
    def recordings(self) -> Path:
        return self.out / "recordings"

    def settings_of(self, run: int) -> dict[str, str]:
        """The environment that makes an arena this season's run ``run``."""
        settings = {
            "MARKET_SOURCE": f"replay:{self.data.resolve()}",
            "ARENA_AGENTS_FILE": str(self.lineup.resolve()),
            "ARENA_SEED": str(self.seed_of(run)),
            "ARENA_RECORDINGS_DIR": str(self.recordings.resolve()),
            "LOG_DIR": str(self.run_dir(run).resolve()),
        }
        if self.start is not None:
            settings["ARENA_REPLAY_FROM"] = self.start.isoformat()
        if self.end is not None:
            settings["ARENA_REPLAY_TO"] = self.end.isoformat()
        if self.symbols:
            settings["ARENA_SYMBOLS"] = ",".join(self.symbols)
        return settings
