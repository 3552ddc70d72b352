# syntax=docker/dockerfile:1.7
# One image for every Collectwise process: the scorer (default command), the admin console,
# the MLflow tracking server and one-off pipeline commands
# (`docker compose run --rm scorer collectwise ...`). See deploy/README.md.

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ARG UV_VERSION=0.13.9
# Bytecode compiled at build time: the runtime user cannot write it, and Feast, MLflow and
# SHAP import thousands of modules at start-up.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The same uv as the Makefile, so the image resolves nothing the lock does not pin.
RUN pip install --no-cache-dir "uv==${UV_VERSION}" \
    && uv venv --python /usr/local/bin/python3 /opt/venv

WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip sync --python /opt/venv/bin/python requirements.lock

# Then the project itself (its console scripts and metadata; no dependency is re-resolved).
COPY pyproject.toml README.md ./
COPY feature_repo/ feature_repo/
COPY ingestion/ ingestion/
COPY training/ training/
COPY serving/ serving/
COPY monitoring/ monitoring/
COPY admin_app/ admin_app/
COPY collectwise/ collectwise/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install --python /opt/venv/bin/python --no-deps .

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

# LightGBM's wheel links the system OpenMP runtime (libgomp.so.1), which the slim image lacks;
# every other native library the lock needs is vendored in its wheel or already present
# (numba's optional TBB layer aside).
# Not version-pinned (DL3008): the base tag floats, and a pinned Debian version vanishes from
# the archive on its next point release; pin the base image by digest to freeze both.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 collectwise \
    && useradd --system --uid 10001 --gid collectwise --create-home \
       --home-dir /home/collectwise --shell /usr/sbin/nologin collectwise

# PYTHONPATH=/app: feature_repo/paths.py derives the repo root (feature_store*.yaml, data/,
# reports/, models/) from its own location, so the packages must be imported from /app, not
# from the copy `uv pip install .` put in site-packages (which still provides the
# `collectwise` console script and the package metadata).
ENV PATH="/opt/venv/bin:${PATH}" \
    VIRTUAL_ENV=/opt/venv \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    HOME=/home/collectwise

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Code and configuration stay root-owned (read-only for the service user).
COPY feature_repo/ feature_repo/
COPY ingestion/ ingestion/
COPY training/ training/
COPY serving/ serving/
COPY monitoring/ monitoring/
COPY admin_app/ admin_app/
COPY collectwise/ collectwise/
# .feastignore makes `feast apply` read feature_repo/ only, as on a developer machine.
COPY feature_store*.yaml params.yaml pyproject.toml .feastignore ./

# The writable places, mount points of the compose volumes. A new named volume copies the
# ownership of the directory it is mounted on, so these must exist and belong to the user.
RUN mkdir -p /app/data /app/reports /app/models /mlruns \
    && chown collectwise:collectwise /app/data /app/reports /app/models /mlruns

# Numeric, so an orchestrator can verify the user is not root (runAsNonRoot).
USER 10001:10001

EXPOSE 8000

# Liveness only (/healthz answers once the app has started); readiness is GET /readyz.
# No curl in the slim image: the standard library does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

CMD ["collectwise", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
