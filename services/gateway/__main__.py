from services.common.runner import main
from services.gateway.service import build

main("gateway", build)
