"""The names the code uses for NATS subjects, derived from :mod:`channels` (the
catalogue), plus the streams and buckets that hold them. No subject string is written
anywhere else.

Events (published through JetStream, stream ``ARENA``) and request-reply subjects
(core NATS, never captured by a stream: a stream would answer requests with a PubAck)
live in disjoint trees so the stream's subject filters cannot swallow a query.
"""

from __future__ import annotations

from services.common import channels as ch
from services.common.tokens import subject_token

# JetStream streams
STREAM = "ARENA"
DLQ_STREAM = "ARENA_DLQ"
# JetStream key-value bucket: the market's state across restarts (pause, cycle sequence,
# running cycle, source position). Its stream is ``KV_<bucket>``, its subjects ``$KV.<bucket>.>``.
MARKET_STATE_BUCKET = "ARENA_MARKET"

# Events; ``*_ALL``: every agent's subject of a per-agent event.
CYCLE_STARTED = ch.CYCLE_STARTED.subject
CYCLE_COMPLETED = ch.CYCLE_COMPLETED.subject
MARKET_SNAPSHOT = ch.MARKET_SNAPSHOT.subject
MARKET_TICK = ch.MARKET_TICK.subject
DECISION_PROPOSED_ALL = ch.DECISION_PROPOSED.subject
DECISION_VERDICT_ALL = ch.DECISION_VERDICT.subject
LEDGER_POSITION_ALL = ch.LEDGER_POSITION.subject
LEDGER_ACCOUNT_ALL = ch.LEDGER_ACCOUNT.subject
AGENT_HEARTBEAT_ALL = ch.AGENT_HEARTBEAT.subject
LLM_CALL_ALL = ch.LLM_CALL.subject

# The stream's filters; a test checks they capture every event and no request.
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

# Request-reply subjects (core NATS): the catalogue's, ``channels.<NAME>.subject``.


# Per-agent subjects; the last token is the agent id.
decision_proposed = ch.DECISION_PROPOSED.for_agent
decision_verdict = ch.DECISION_VERDICT.for_agent
ledger_position = ch.LEDGER_POSITION.for_agent
ledger_account = ch.LEDGER_ACCOUNT.for_agent
agent_heartbeat = ch.AGENT_HEARTBEAT.for_agent
llm_call = ch.LLM_CALL.for_agent


def dead_letter(service: str) -> str:
    return f"arena.dlq.{subject_token(service)}"
