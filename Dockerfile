# The floxide image: one image for the operator (`floxide operator`) and the workers
# (`floxide worker package.module:attribute`). Workflow images build FROM it (examples/k8s/Dockerfile).
#
#   docker build -t floxide:0.1.0 .
#   docker build --build-arg BASE_IMAGE=registry.example.com/python:3.11-slim -t floxide:0.1.0 .
#
# BASE_IMAGE is used by both stages (the venv's interpreter must be the final stage's), so the image
# also builds from a mirrored or pre-pulled base. It must be a Debian-like Python 3.11+ image with
# python3 at the same path in both stages.
#
# The final stage holds the base image and the venv only: no compiler, no build tools, no sources.
# It runs as the unprivileged user 10001:10001 and writes nothing outside /tmp, so it works with a
# read-only root filesystem (the Helm chart mounts an emptyDir at /tmp).

ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN python3 -m venv /opt/floxide
ENV PATH=/opt/floxide/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
# The package directories are empty stand-ins here; the real sources follow.
COPY pyproject.toml README.md ./
RUN mkdir -p floxide/distributed floxide/redis floxide/ui operator worker \
    && touch floxide/__init__.py floxide/distributed/__init__.py floxide/redis/__init__.py \
             floxide/ui/__init__.py operator/__init__.py worker/__init__.py \
    && pip install '.[operator,ui]' \
    && pip uninstall --yes floxide \
    && rm -rf floxide operator worker build

COPY floxide ./floxide
COPY operator ./operator
COPY worker ./worker
# No dependency changes here (--no-deps); pip byte-compiles the installed modules, so a read-only
# root filesystem never needs a __pycache__ write. The smoke test imports every module of the three
# packages (the operator's handlers and the worker process among them), so an undeclared dependency
# fails the build; it runs outside /src, whose operator/ directory would shadow the standard
# library's operator module.
RUN pip install --no-deps '.[operator,ui]' \
    && cd / \
    && floxide --version \
    && python3 -m floxide.importcheck floxide floxide_operator floxide_worker


FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="floxide" \
      org.opencontainers.image.description="Floxide for Python: distributed workflow engine, operator and worker" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Floxide for Python"

# Graphviz lays out the dashboard's run pictures (`floxide ui`, `floxide graph --run`).
# A fixed, numeric, unprivileged user: Kubernetes' runAsNonRoot can verify it from the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/* \
    && echo 'floxide:x:10001:10001:floxide:/tmp:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'floxide:x:10001:' >> /etc/group \
    && mkdir -p /app

COPY --from=builder /opt/floxide /opt/floxide

ENV VIRTUAL_ENV=/opt/floxide \
    PATH=/opt/floxide/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

WORKDIR /app
USER 10001:10001

# 8080: kopf's /healthz (operator), the dashboard (`floxide ui --host 0.0.0.0`). 9090: /metrics (operator and workers), /healthz and /readyz (workers).
EXPOSE 8080 9090

ENTRYPOINT ["floxide"]
CMD ["--help"]
