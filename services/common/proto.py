"""Generate ``proto/``: the language-neutral contract of every NATS subject.

``python -m services.common.proto`` writes an AsyncAPI 3 document
(``proto/asyncapi.json``) from the channel catalogue (:mod:`channels`) and one JSON
Schema per message (``proto/schemas/*.json``);
``--check`` exits 1 when the committed files differ from the models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from services.common import channels, subjects
from services.common import contracts as c
from services.common.channels import AGENT, Request
from services.common.settings import PROJECT_ROOT

REF = "#/components/schemas/{model}"


def _models() -> list[type[c.Message]]:
    models: list[type[c.Message]] = []
    for channel in channels.CATALOGUE:
        found: tuple[type[c.Message], ...]
        if isinstance(channel, Request):
            found = (channel.request, channel.reply, *channel.other_replies, c.ErrorReply)
        else:
            found = (channel.message, c.ErrorReply)
        for model in found:
            if model not in models:
                models.append(model)
    return models


def _message_ref(model: type[c.Message]) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{model.__name__}"}


def asyncapi() -> dict[str, Any]:
    models = _models()
    _, top = models_json_schema(
        [(m, "serialization") for m in models], ref_template=REF, title="LLM Trading Arena"
    )
    documented: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for ch in channels.CATALOGUE:
        sent = ch.request if isinstance(ch, Request) else ch.message
        sender = ch.server if isinstance(ch, Request) else ch.publisher
        channel: dict[str, Any] = {
            "address": ch.pattern,
            "description": ch.description,
            "messages": {sent.__name__: _message_ref(sent)},
        }
        if AGENT in ch.pattern:
            channel["parameters"] = {"agent_id": {"description": "The agent's id (line-up)."}}
        documented[ch.key] = channel
        operation: dict[str, Any] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{ch.key}"},
            "summary": f"{sender}: {ch.description}",
            "x-publisher": sender,
        }
        if isinstance(ch, Request):
            reply_key = f"{ch.key}Reply"
            documented[reply_key] = {
                "address": None,
                "description": "The requester's inbox (core NATS request-reply).",
                "messages": {
                    ch.reply.__name__: _message_ref(ch.reply),
                    **{m.__name__: _message_ref(m) for m in ch.other_replies},
                    "ErrorReply": _message_ref(c.ErrorReply),
                },
            }
            operation["action"] = "receive"
            operation["summary"] = f"answered by {sender}: {ch.description}"
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
                "services/common/channels.py and contracts/: do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:4222", "protocol": "nats", "description": "make run"}
        },
        "channels": documented,
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
