"""Generate ``proto/``: the language-neutral contract of every NATS subject.

``python -m services.common.proto`` writes an AsyncAPI 3 document
(``proto/asyncapi.json``) and one JSON Schema per message (``proto/schemas/*.json``);
``--check`` exits 1 when the committed files differ from the models.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from services.common import contracts as c
from services.common import subjects
from services.common.settings import PROJECT_ROOT

AGENT = "{agent_id}"


@dataclass(frozen=True)
class Channel:
    key: str
    address: str
    message: type[c.Message]
    publisher: str
    description: str
    reply: type[c.Message] | None = None
    # Replies the request may ask for instead of ``reply`` (e.g. a compact format).
    other_replies: tuple[type[c.Message], ...] = ()

    @property
    def is_request(self) -> bool:
        return self.reply is not None


CHANNELS: tuple[Channel, ...] = (
    Channel("cycleStarted", subjects.CYCLE_STARTED, c.CycleStarted, "market",
            "A trading cycle opens; agents have until decision_deadline."),
    Channel("marketSnapshot", subjects.MARKET_SNAPSHOT, c.MarketSnapshot, "market",
            "The market as every agent sees it for one cycle."),
    Channel("marketTick", subjects.MARKET_TICK, c.MarketTick, "market",
            "Prices between cycles, for stops, targets and liquidations."),
    Channel("decisionProposed", subjects.DECISION_PROPOSED_TEMPLATE,
            c.Decision, "agent", "One agent's decision for one cycle."),
    Channel("decisionVerdict", subjects.DECISION_VERDICT_TEMPLATE,
            c.Verdict, "risk", "Risk's verdict: one result per action of a decision."),
    Channel("ledgerPosition", subjects.LEDGER_POSITION_TEMPLATE,
            c.PositionEvent, "ledger", "A position opened or closed."),
    Channel("ledgerAccount", subjects.LEDGER_ACCOUNT_TEMPLATE,
            c.AccountEvent, "ledger", "An account's balances changed."),
    Channel("cycleCompleted", subjects.CYCLE_COMPLETED, c.CycleCompleted, "ledger",
            "Every verdict of a cycle applied, or its deadline passed."),
    Channel("agentHeartbeat", subjects.AGENT_HEARTBEAT_TEMPLATE,
            c.Heartbeat, "agent", "An agent is alive, or disabled and why."),
    Channel("llmCall", subjects.LLM_CALL_TEMPLATE,
            c.LlmCall, "agent", "One call to a model provider, with tokens and cost."),
    Channel("ledgerQueryPortfolio", subjects.LEDGER_QUERY_PORTFOLIO, c.PortfolioQuery,
            "ledger", "An agent's account and open positions.", c.Portfolio),
    Channel("ledgerQueryAccounts", subjects.LEDGER_QUERY_ACCOUNTS, c.AccountsQuery,
            "ledger", "Every account.", c.Accounts),
    Channel("ledgerQueryLeaderboard", subjects.LEDGER_QUERY_LEADERBOARD, c.LeaderboardQuery,
            "ledger", "Agents ranked by equity.", c.Leaderboard),
    Channel("ledgerQueryPositions", subjects.LEDGER_QUERY_POSITIONS, c.PositionsQuery,
            "ledger", "Positions, open or closed, newest first.", c.Positions),
    Channel("ledgerQueryTrades", subjects.LEDGER_QUERY_TRADES, c.TradesQuery,
            "ledger", "Executions, newest first.", c.Trades),
    Channel("ledgerQueryDecisions", subjects.LEDGER_QUERY_DECISIONS, c.DecisionsQuery,
            "ledger", "Stored decisions with their verdicts, newest first.", c.Decisions),
    Channel("ledgerQueryEquity", subjects.LEDGER_QUERY_EQUITY, c.EquityQuery,
            "ledger", "Equity time series per agent (format: points or columns; a reply "
            "over the server's max payload comes in chunks, header Arena-Chunk: i/n).",
            c.EquitySeries, (c.EquityColumns,)),
    Channel("ledgerQueryStats", subjects.LEDGER_QUERY_STATS, c.StatsQuery,
            "ledger", "Performance statistics per agent.", c.Stats),
    Channel("ledgerQueryVerify", subjects.LEDGER_QUERY_VERIFY, c.VerifyQuery,
            "ledger", "Recompute the books and check the audit chain.", c.VerifyReport),
    Channel("marketQueryPrices", subjects.MARKET_QUERY_PRICES, c.PricesQuery,
            "market", "The latest price of every symbol.", c.Prices),
    Channel("marketQuerySymbol", subjects.MARKET_QUERY_SYMBOL, c.SymbolQuery,
            "market", "Ticker, funding, candles and indicators of one symbol.", c.SymbolReply),
    Channel("marketQuerySnapshot", subjects.MARKET_QUERY_SNAPSHOT, c.SnapshotQuery,
            "market", "The latest market snapshot.", c.SnapshotReply),
    Channel("schedulerStatus", subjects.SCHEDULER_STATUS, c.SchedulerCommand,
            "market", "The scheduler's state and statistics.", c.SchedulerStatus),
    Channel("schedulerTrigger", subjects.SCHEDULER_TRIGGER, c.SchedulerCommand,
            "market", "Start a cycle now (when none is running).", c.SchedulerStatus),
    Channel("schedulerPause", subjects.SCHEDULER_PAUSE, c.SchedulerCommand,
            "market", "Stop starting new cycles.", c.SchedulerStatus),
    Channel("schedulerResume", subjects.SCHEDULER_RESUME, c.SchedulerCommand,
            "market", "Start cycles again.", c.SchedulerStatus),
)  # fmt: skip

REF = "#/components/schemas/{model}"


def _models() -> list[type[c.Message]]:
    models: list[type[c.Message]] = []
    for channel in CHANNELS:
        for model in (channel.message, channel.reply, *channel.other_replies, c.ErrorReply):
            if model is not None and model not in models:
                models.append(model)
    return models


def _message_ref(model: type[c.Message]) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{model.__name__}"}


def asyncapi() -> dict[str, Any]:
    models = _models()
    _, top = models_json_schema(
        [(m, "serialization") for m in models], ref_template=REF, title="LLM Trading Arena"
    )
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for ch in CHANNELS:
        channel: dict[str, Any] = {
            "address": ch.address,
            "description": ch.description,
            "messages": {ch.message.__name__: _message_ref(ch.message)},
        }
        if AGENT in ch.address:
            channel["parameters"] = {"agent_id": {"description": "The agent's id (line-up)."}}
        channels[ch.key] = channel
        operation: dict[str, Any] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{ch.key}"},
            "summary": f"{ch.publisher}: {ch.description}",
            "x-publisher": ch.publisher,
        }
        if ch.reply is not None:
            reply_key = f"{ch.key}Reply"
            channels[reply_key] = {
                "address": None,
                "description": "The requester's inbox (core NATS request-reply).",
                "messages": {
                    ch.reply.__name__: _message_ref(ch.reply),
                    **{m.__name__: _message_ref(m) for m in ch.other_replies},
                    "ErrorReply": _message_ref(c.ErrorReply),
                },
            }
            operation["action"] = "receive"
            operation["summary"] = f"answered by {ch.publisher}: {ch.description}"
            operation["reply"] = {"channel": {"$ref": f"#/channels/{reply_key}"}}
        operations[ch.key] = operation
    messages = {
        m.__name__: {
            "name": m.__name__,
            "contentType": "application/json",
            "summary": (m.__doc__ or m.__name__).strip().splitlines()[0],
            "payload": {"$ref": REF.format(model=m.__name__)},
        }
        for m in models
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "LLM Trading Arena",
            "version": str(c.SCHEMA_VERSION),
            "description": (
                "Every NATS subject of the arena. Events are stored in the JetStream stream "
                f"{subjects.STREAM} with Nats-Msg-Id '<subject>:<natural id>'; queries and "
                "scheduler control are core request-reply. Generated from "
                "services/common/contracts.py: do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:4222", "protocol": "nats", "description": "make run"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": top.get("$defs", {})},
    }


def schema_files() -> dict[str, dict[str, Any]]:
    return {
        f"schemas/{m.__name__}.json": m.model_json_schema(mode="serialization") for m in _models()
    }


def render() -> dict[str, str]:
    """Every file of proto/ by relative path, as text."""
    files = {"asyncapi.json": asyncapi(), **schema_files()}
    return {path: json.dumps(doc, indent=2, sort_keys=True) + "\n" for path, doc in files.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.common.proto")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "proto")
    parser.add_argument("--check", action="store_true", help="fail when proto/ is out of date")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = [p for p, text in files.items() if _read(args.out / p) != text]
        extra = sorted(
            str(p.relative_to(args.out))
            for p in args.out.rglob("*.json")
            if str(p.relative_to(args.out)) not in files
        )
        for path in stale + extra:
            print(f"proto/{path} is out of date; run `make proto`", file=sys.stderr)
        return 1 if stale or extra else 0
    for old in args.out.rglob("*.json"):
        if str(old.relative_to(args.out)) not in files:
            old.unlink()
    for path, text in files.items():
        target = args.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {args.out}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
