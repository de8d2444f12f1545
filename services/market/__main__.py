"""``python -m services.market`` runs the service; ``... history fetch ...`` fetches history."""

import sys

from services.common.runner import main
from services.market.service import build

if __name__ == "__main__":
    if sys.argv[1:2] == ["history"]:
        from services.market.history.cli import main as history

        sys.exit(history(sys.argv[2:]))
    main("market", build)
