"""Every NATS subject the arena uses. No subject string is written anywhere else.

Events (published through JetStream, stream ``ARENA``) and request-reply subjects
(core NATS, never captured by a stream: a stream would answer requests with a PubAck)
live in disjoint trees so the stream's subject filters cannot swallow a query.
"""

from __future__ import annotations

import re

# JetStream streams
STREAM = "ARENA"
DLQ_STREAM = "ARENA_DLQ"
# JetStream key-value bucket: the market's state across restarts (pause, cycle sequence,
# running cycle, source position). Its stream is ``KV_<bucket>``, its subjects ``$KV.<bucket>.>``.
MARKET_STATE_BUCKET = "ARENA_MARKET"

# Events
CYCLE_STARTED = "arena.cycle.started"
CYCLE_COMPLETED = "arena.cycle.completed"
MARKET_SNAPSHOT = "arena.market.snapshot"
MARKET_TICK = "arena.market.tick"
DECISION_PROPOSED_ALL = "arena.decision.proposed.*"
DECISION_VERDICT_ALL = "arena.decision.verdict.*"
LEDGER_POSITION_ALL = "arena.ledger.position.*"
LEDGER_ACCOUNT_ALL = "arena.ledger.account.*"
AGENT_HEARTBEAT_ALL = "arena.agent.heartbeat.*"
LLM_CALL_ALL = "arena.llm.call.*"

# Per-agent subjects; the last token is the agent id.
DECISION_PROPOSED_TEMPLATE = "arena.decision.proposed.{agent_id}"
DECISION_VERDICT_TEMPLATE = "arena.decision.verdict.{agent_id}"
LEDGER_POSITION_TEMPLATE = "arena.ledger.position.{agent_id}"
LEDGER_ACCOUNT_TEMPLATE = "arena.ledger.account.{agent_id}"
AGENT_HEARTBEAT_TEMPLATE = "arena.agent.heartbeat.{agent_id}"
LLM_CALL_TEMPLATE = "arena.llm.call.{agent_id}"

STREAM_SUBJECTS: tuple[str, ...] = (
    "arena.cycle.*",
    MARKET_SNAPSHOT,
    MARKET_TICK,
    DECISION_PROPOSED_ALL,
    DECISION_VERDICT_ALL,
    LEDGER_POSITION_ALL,
    LEDGER_ACCOUNT_ALL,
    AGENT_HEARTBEAT_ALL,
    LLM_CALL_ALL,
)

# Dead letters: "arena.dlq.<service>", kept in their own stream.
DLQ_ALL = "arena.dlq.*"

# Request-reply (core NATS)
LEDGER_QUERY_PORTFOLIO = "arena.ledger.query.portfolio"
LEDGER_QUERY_ACCOUNTS = "arena.ledger.query.accounts"
LEDGER_QUERY_LEADERBOARD = "arena.ledger.query.leaderboard"
LEDGER_QUERY_POSITIONS = "arena.ledger.query.positions"
LEDGER_QUERY_TRADES = "arena.ledger.query.trades"
LEDGER_QUERY_DECISIONS = "arena.ledger.query.decisions"
LEDGER_QUERY_EQUITY = "arena.ledger.query.equity"
LEDGER_QUERY_STATS = "arena.ledger.query.stats"
LEDGER_QUERY_VERIFY = "arena.ledger.query.verify"
MARKET_QUERY_SNAPSHOT = "arena.market.query.snapshot"
MARKET_QUERY_PRICES = "arena.market.query.prices"
MARKET_QUERY_SYMBOL = "arena.market.query.symbol"
SCHEDULER_STATUS = "arena.scheduler.status"
SCHEDULER_TRIGGER = "arena.scheduler.trigger"
SCHEDULER_PAUSE = "arena.scheduler.pause"
SCHEDULER_RESUME = "arena.scheduler.resume"

_TOKEN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def valid_token(value: str) -> bool:
    """True when ``value`` can be one subject token (agent ids, service names)."""
    return bool(_TOKEN.match(value))


def _token(value: str) -> str:
    if not valid_token(value):
        raise ValueError(
            f"{value!r} cannot be used in a subject: use lower-case letters, digits, '-' or '_'"
        )
    return value


def decision_proposed(agent_id: str) -> str:
    return DECISION_PROPOSED_TEMPLATE.format(agent_id=_token(agent_id))


def decision_verdict(agent_id: str) -> str:
    return DECISION_VERDICT_TEMPLATE.format(agent_id=_token(agent_id))


def ledger_position(agent_id: str) -> str:
    return LEDGER_POSITION_TEMPLATE.format(agent_id=_token(agent_id))


def ledger_account(agent_id: str) -> str:
    return LEDGER_ACCOUNT_TEMPLATE.format(agent_id=_token(agent_id))


def agent_heartbeat(agent_id: str) -> str:
    return AGENT_HEARTBEAT_TEMPLATE.format(agent_id=_token(agent_id))


def llm_call(agent_id: str) -> str:
    return LLM_CALL_TEMPLATE.format(agent_id=_token(agent_id))


def dead_letter(service: str) -> str:
    return f"arena.dlq.{_token(service)}"
