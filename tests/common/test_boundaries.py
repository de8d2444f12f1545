"""Services share only services.common (the same contract import-linter checks in lint)."""

from __future__ import annotations

import ast
from pathlib import Path

from services.common.settings import PROJECT_ROOT

SERVICES = ("market", "agent", "risk", "ledger", "gateway")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def cross_imports(root: Path) -> list[str]:
    problems = []
    for owner in ("common", *SERVICES):
        for path in (root / "services" / owner).rglob("*.py"):
            for module in _imports(path):
                parts = module.split(".")
                crosses = len(parts) > 1 and parts[0] == "services" and parts[1] in SERVICES
                if crosses and parts[1] != owner:
                    problems.append(f"{path.relative_to(root)} imports {module}")
    return problems


def test_no_service_imports_another() -> None:
    assert cross_imports(PROJECT_ROOT) == []


def test_the_check_catches_a_cross_import(tmp_path: Path) -> None:
    (tmp_path / "services" / "risk").mkdir(parents=True)
    (tmp_path / "services" / "common").mkdir()
    (tmp_path / "services" / "risk" / "bad.py").write_text("from services.ledger import store\n")
    assert cross_imports(tmp_path) == ["services/risk/bad.py imports services.ledger"]
