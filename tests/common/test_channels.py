"""The channel catalogue is the one place a subject is written: every subject a service
publishes, serves or asks for is one of its entries, served or published by the service
the entry names. Read from the source (no server needed): a new subject that skips the
catalogue fails here before anything runs."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common import channels, subjects
from services.common.channels import Channel, Event, Request
from services.common.settings import PROJECT_ROOT

SERVICES = PROJECT_ROOT / "services"
# Where subject strings are written (the catalogue) and named (its aliases).
HOMES = {SERVICES / "common" / "channels.py", SERVICES / "common" / "subjects.py"}
# Names in subjects.py that are not subjects of messages: streams, buckets, dead letters.
INFRASTRUCTURE = {"STREAM", "DLQ_STREAM", "MARKET_STATE_BUCKET", "STREAM_SUBJECTS", "DLQ_ALL"}
INFRASTRUCTURE_CALLS = {"dead_letter"}
PROBE = "probe-agent"
# Bus calls that take a bare subject: only the bus itself uses them; services go through
# the catalogue (serve_channel, ask).
UNTYPED_CALLS = {"serve", "request"}


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SERVICES.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _docstrings(tree: ast.Module) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _channel_of_subject_name(name: str) -> Channel | None:
    """The catalogue entry a ``subjects.<name>`` stands for (None: not an entry)."""
    value = getattr(subjects, name)
    if callable(value):
        subject = value(PROBE)
        return next(
            (e for e in channels.EVENTS if e.per_agent and e.for_agent(PROBE) == subject), None
        )
    return next((c for c in channels.CATALOGUE if c.subject == value), None)


def _references(tree: ast.Module) -> Iterator[tuple[ast.Attribute, Channel | None]]:
    """Every ``subjects.X`` and ``channels.X`` in a module, with the entry it names."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        if node.value.id == "subjects" and hasattr(subjects, node.attr):
            skip = node.attr in INFRASTRUCTURE | INFRASTRUCTURE_CALLS
            yield node, None if skip else _channel_of_subject_name(node.attr)
        elif node.value.id == "channels" and isinstance(
            getattr(channels, node.attr, None), Event | Request
        ):
            yield node, getattr(channels, node.attr)


def _service(path: Path) -> str:
    return path.relative_to(SERVICES).parts[0]


def test_no_subject_is_written_outside_the_catalogue() -> None:
    written = []
    for path, tree in _sources():
        if path in HOMES:
            continue
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith("arena.")
                and id(node) not in docstrings
            ):
                written.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.value!r}")
    assert not written, "subjects written outside services/common/channels.py: " + ", ".join(
        written
    )


def test_every_subject_named_in_the_services_is_catalogued() -> None:
    missing = []
    for path, tree in _sources():
        if path in HOMES:
            continue
        for node, channel in _references(tree):
            infrastructure = node.attr in INFRASTRUCTURE | INFRASTRUCTURE_CALLS
            if channel is None and not infrastructure:
                missing.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} {node.attr}")
    assert not missing, "subjects not in the catalogue: " + ", ".join(missing)


def test_every_name_in_subjects_is_a_catalogue_entry() -> None:
    names = [n for n in vars(subjects) if n.isupper() or n.islower()]
    for name in names:
        value = getattr(subjects, name)
        is_subject = isinstance(value, str) and value.startswith("arena.")
        is_per_agent = callable(value) and name not in INFRASTRUCTURE_CALLS
        if name in INFRASTRUCTURE or not (is_subject or is_per_agent):
            continue
        if getattr(value, "__module__", subjects.__name__) != subjects.__name__:
            continue  # imported helpers
        assert _channel_of_subject_name(name) is not None, name


def test_services_answer_and_ask_only_through_catalogue_entries() -> None:
    untyped = []
    for path, tree in _sources():
        if path == SERVICES / "common" / "bus.py":
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in UNTYPED_CALLS
                and ast.unparse(node.func.value).endswith("bus")
            ):
                untyped.append(f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}")
    assert not untyped, "use bus.serve_channel / bus.ask with a catalogue entry: " + ", ".join(
        untyped
    )


def test_each_request_is_served_by_the_service_the_catalogue_names() -> None:
    served: dict[str, set[str]] = {}
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("serve_channel", "_serve")
                and node.args
                and isinstance(node.args[0], ast.Attribute)
            ):
                continue
            channel = getattr(channels, node.args[0].attr, None)
            assert isinstance(channel, Request), ast.unparse(node)
            assert channel.server == _service(path), (
                f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} serves {channel.subject}, "
                f"which the catalogue says {channel.server} answers"
            )
            served.setdefault(channel.subject, set()).add(_service(path))
    unserved = [r.subject for r in channels.REQUESTS if r.subject not in served]
    assert not unserved, f"catalogued requests no service answers: {unserved}"


def test_each_event_is_named_by_the_service_that_publishes_it() -> None:
    named: dict[str, set[str]] = {}
    for path, tree in _sources():
        if path in HOMES:
            continue
        for _, channel in _references(tree):
            if isinstance(channel, Event):
                named.setdefault(channel.key, set()).add(_service(path))
    for event in channels.EVENTS:
        assert event.publisher in named.get(event.key, set()), (
            f"{event.key}: the catalogue says {event.publisher} publishes it, "
            f"but services/{event.publisher}/ never names it"
        )


def test_the_catalogue_lists_every_entry_once() -> None:
    defined = [v for v in vars(channels).values() if isinstance(v, Event | Request)]
    assert sorted(c.key for c in defined) == sorted(c.key for c in channels.CATALOGUE)
    assert len({c.key for c in channels.CATALOGUE}) == len(channels.CATALOGUE)
    assert len({c.subject for c in channels.CATALOGUE}) == len(channels.CATALOGUE)


@pytest.mark.parametrize("event", [e for e in channels.EVENTS if e.per_agent], ids=lambda e: e.key)
def test_per_agent_subjects_end_in_the_agent(event: Event[Any]) -> None:
    subject = event.for_agent(PROBE)
    assert subject.rsplit(".", 1)[1] == PROBE
    assert subject.rsplit(".", 1)[0] == event.subject.rsplit(".", 1)[0]
    assert event.subject.endswith(".*")
