"""Subjects and the generated proto/ stay consistent with the code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common import channels, proto, subjects
from services.common.settings import PROJECT_ROOT


def _matches(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    if want[-1] == ">":
        return have[: len(want) - 1] == want[:-1] or all(
            w in ("*", h) for w, h in zip(want[:-1], have, strict=False)
        )
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have, strict=True))


def _captured(subject: str) -> bool:
    return any(_matches(p, subject) for p in subjects.STREAM_SUBJECTS)


@pytest.mark.parametrize("channel", channels.CATALOGUE, ids=lambda c: c.key)
def test_events_are_in_the_stream_and_queries_are_not(channel: channels.Channel) -> None:
    concrete = channel.pattern.replace(channels.AGENT, "some-agent")
    # A request captured by the stream would be answered by JetStream with a PubAck.
    assert _captured(concrete) is not isinstance(channel, channels.Request)


def test_agent_subjects_refuse_tokens_that_would_widen_them() -> None:
    assert subjects.decision_proposed("gpt-4o") == "arena.decision.proposed.gpt-4o"
    for bad in ("a.b", "*", ">", "A", ""):
        with pytest.raises(ValueError, match="subject"):
            subjects.decision_proposed(bad)


def test_proto_is_up_to_date_with_the_contracts() -> None:
    assert proto.main(["--check", "--out", str(PROJECT_ROOT / "proto")]) == 0, (
        "proto/ differs from services/common/contracts/: run `make proto`"
    )


def test_check_notices_a_stale_file(tmp_path: Path) -> None:
    assert proto.main(["--out", str(tmp_path)]) == 0
    assert proto.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "schemas" / "Decision.json").write_text("{}\n")
    assert proto.main(["--check", "--out", str(tmp_path)]) == 1


def test_asyncapi_lists_every_subject_with_a_resolvable_payload() -> None:
    doc = json.loads((PROJECT_ROOT / "proto" / "asyncapi.json").read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {ch["address"] for ch in doc["channels"].values()}
    for channel in channels.CATALOGUE:
        assert channel.pattern in addresses
    schemas = doc["components"]["schemas"]
    for message in doc["components"]["messages"].values():
        name = message["payload"]["$ref"].rsplit("/", 1)[1]
        assert "properties" in schemas[name]
        assert (PROJECT_ROOT / "proto" / "schemas" / f"{name}.json").exists()
