# syntax=docker/dockerfile:1
# The CloudSweep operator image: `docker build -t cloudsweep:dev .`
#
# Two stages: the builder installs the package and its pinned dependencies (constraints.txt) into
# a virtualenv; the runtime stage copies that virtualenv onto the same slim base, without pip's
# caches or build tools. The image runs as the numeric non-root user 10001, writes only to /tmp
# (mount an emptyDir there with a read-only root file system), and starts `cloudsweep operator`.
# Ports: 8080 liveness (/healthz), 9090 Prometheus metrics (/metrics), 9443 admission webhook.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/cloudsweep
WORKDIR /src
# Dependencies first, in their own layer: it is rebuilt only when the pins change.
COPY constraints.txt ./
RUN /opt/cloudsweep/bin/pip install --constraint constraints.txt \
        $(grep -E '^[A-Za-z0-9_.-]+==' constraints.txt | tr '\n' ' ')
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/cloudsweep/bin/pip install --constraint constraints.txt --no-deps . \
    && /opt/cloudsweep/bin/pip check \
    && /opt/cloudsweep/bin/python -m compileall -q /opt/cloudsweep/lib
# Read by `cloudsweep db upgrade` (migrations) and the custom-resource validation (CRDs).
COPY migrations/ /opt/cloudsweep/share/cloudsweep/migrations/
COPY crds/ /opt/cloudsweep/share/cloudsweep/crds/

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="cloudsweep" \
      org.opencontainers.image.description="Find, price and safely remove AWS waste: a Kubernetes operator" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 cloudsweep \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin cloudsweep
COPY --from=builder /opt/cloudsweep /opt/cloudsweep
ENV PATH=/opt/cloudsweep/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    CLOUDSWEEP_MIGRATIONS_DIR=/opt/cloudsweep/share/cloudsweep/migrations \
    CLOUDSWEEP_CRDS_DIR=/opt/cloudsweep/share/cloudsweep/crds
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090 9443
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["cloudsweep"]
CMD ["operator"]
