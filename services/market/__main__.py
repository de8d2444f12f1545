"""``python -m services.market``."""

from services.common.runner import main
from services.market.service import build

if __name__ == "__main__":
    main("market", build)
