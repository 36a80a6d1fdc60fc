# The floxide image: one image for the operator (`floxide operator`) and the workers
# (`floxide worker package.module:attribute`). Workflow images build FROM it (examples/k8s/Dockerfile).
#
#   docker build -t floxide:0.1.0 .
#   docker build --build-arg BASE_IMAGE=registry.example.com/python:3.11-slim -t floxide:0.1.0 .
#   docker build --build-arg BASE_IMAGE=python:3.11-slim@sha256:<digest> -t floxide:0.1.0 .
#
# BASE_IMAGE is used by both stages (the venv's interpreter must be the final stage's), so the image
# also builds from a mirrored or pre-pulled base. It must be a Debian-like Python 3.11 image (the
# lock below is compiled for 3.11) with python3 at the same path in both stages. For a build that
# does not move when the tag does, pin the base by digest as above (`docker buildx imagetools
# inspect python:3.11-slim` prints the current one).
#
# Dependencies come from requirements/image.txt only: every package pinned to one version and
# installed with --require-hashes, so a changed or substituted file on the index fails the build.
# scripts/lock-image.sh regenerates it from pyproject.toml (tests/packaging/test_image_lock.py
# checks that the two agree).
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

# Dependencies first, in their own layer: it is rebuilt only when the lock changes. The lock is
# complete (pip-compile resolved it for floxide[operator,ui,otel]), so --no-deps installs exactly it.
COPY requirements/image.txt ./requirements/image.txt
RUN pip install --require-hashes --no-deps -r requirements/image.txt

COPY pyproject.toml README.md ./
COPY floxide ./floxide
COPY operator ./operator
COPY worker ./worker
# No dependency changes here (--no-deps), and the build uses the locked setuptools and wheel
# (--no-build-isolation), removed afterwards: the final image holds no build tools. pip
# byte-compiles the installed modules, so a read-only root filesystem never needs a __pycache__
# write. `pip check` fails on a dependency the lock lacks; the smoke test imports every module of
# the three packages (the operator's handlers and the worker process among them), so an undeclared
# dependency fails the build; it runs outside /src, whose operator/ directory would shadow the
# standard library's operator module.
RUN pip install --no-deps --no-build-isolation . \
    && pip uninstall --yes setuptools wheel \
    && pip check \
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
