"""Services share only services.common: the contracts in pyproject.toml, checked by import-linter.

The rules live in one place, ``[tool.importlinter]``; ``make lint`` runs them, and so does
this test, once on the project and once on a small tree that breaks each contract (so a
contract that stopped checking anything would be noticed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.common.settings import PROJECT_ROOT

SERVICES = ("market", "agent", "risk", "ledger", "gateway")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(packages_root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter with the project's contracts, on the ``services`` under ``packages_root``."""
    env = {**os.environ, "PYTHONPATH": str(packages_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(PROJECT_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=packages_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_project_keeps_the_import_contracts() -> None:
    done = lint_imports(PROJECT_ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_the_contracts_catch_a_cross_import_and_common_importing_a_service(
    tmp_path: Path,
) -> None:
    for package in ("services", *(f"services/{name}" for name in ("common", *SERVICES))):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "services" / "ledger" / "store.py").write_text("")
    (tmp_path / "services" / "risk" / "bad.py").write_text("from services.ledger import store\n")
    (tmp_path / "services" / "common" / "bad.py").write_text("import services.gateway\n")

    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 kept, 2 broken" in done.stdout
    assert "services.risk.bad -> services.ledger.store" in done.stdout
    assert "services.common.bad -> services.gateway" in done.stdout
