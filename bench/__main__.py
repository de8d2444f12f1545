"""``python -m bench`` (``make bench``): every benchmark, one after the other."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("risk", "ledger", "market", "agent", "gateway", "gateway_memory")


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== bench.{name} ===", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], check=False).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
