# fastkg: a Jupyter kernel gateway. Configure it with KG_* (and FASTKG_*) environment variables, e.g.
#   docker build -t fastkg . && docker run --rm -p 8888:8888 -e KG_AUTH_TOKEN=change-me fastkg
# BASE_IMAGE: any Debian-like image with python3 (and python3-venv); the tests build it on a debootstrap base.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini as PID 1: forwards SIGTERM to the gateway and reaps orphans of kernel subprocesses. (It also keeps
# the gateway off PID 1, which ipykernel's parent poller needs to notice a gateway crash.)
RUN command -v tini >/dev/null 2>&1 \
    || (apt-get update \
        && apt-get install -y --no-install-recommends tini \
        && rm -rf /var/lib/apt/lists/*)

# A venv, so the same steps work on a Debian python3 (which refuses system-wide pip installs) and python:*.
RUN python3 -m venv /opt/fastkg
ENV PATH=/opt/fastkg/bin:$PATH
WORKDIR /tmp/fastkg-src
COPY pyproject.toml README.md ./
COPY app ./app
# PIP_EXTRAS='[kubernetes]' adds gateway_provisioners' Kubernetes provisioner (deploy/kubernetes uses it).
ARG PIP_EXTRAS=""
RUN pip install ".${PIP_EXTRAS}" \
    && cd / \
    && rm -rf /tmp/fastkg-src
COPY examples /opt/fastkg/examples

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin fastkg
USER fastkg
WORKDIR /home/fastkg

ENV KG_IP=0.0.0.0 \
    KG_PORT=8888
EXPOSE 8888

# GET <base>/readyz on loopback (no token needed; 503 until kernels and pools are ready); https with KG_CERTFILE.
# python, not curl: the image has no curl. Kubernetes: livenessProbe <base>/livez, readinessProbe <base>/readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c 'import os, ssl, urllib.request as r; e = os.environ.get; b = e("KG_BASE_URL", "").strip("/"); s = "https" if e("KG_CERTFILE") else "http"; u = "%s://127.0.0.1:%s%s/readyz" % (s, e("KG_PORT", "8888"), "/" + b if b else ""); r.urlopen(u, timeout=4, context=ssl._create_unverified_context() if s == "https" else None)'

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["fastkg"]
