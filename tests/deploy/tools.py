"""The external tools the deployment tests call (installed by scripts/ensure-test-tools.sh)."""

from __future__ import annotations

import shutil
import subprocess


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which(args[0]) is None:
        raise AssertionError(f"{args[0]} is not installed: run scripts/ensure-test-tools.sh")
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
