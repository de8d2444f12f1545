"""``python -m services.risk``."""

from services.common.runner import main
from services.risk.service import build

if __name__ == "__main__":
    main("risk", build)
