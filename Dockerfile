# coderunner: the service image. Two stages on the same base:
#   build    builds wheels of the project and its pinned dependencies, installs them into /opt/venv
#   runtime  only the base's python3 and that venv, as a non-root user
#
# BASE_IMAGE is any Debian-based image with python3 3.11: the official python:3.11-slim-bookworm by
# default. Where no registry is reachable, the locally built runtime image works
# (`make build` does this; the classic builder resolves FROM against local images):
#   DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=coderunner/runtime-python:bookworm -t coderunner:local .
# Both stages use the same BASE_IMAGE: the venv's interpreter is the base's python3.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
USER root
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# Debian's python3 ships venv without ensurepip (it is in python3-venv); the official image has it.
RUN if ! python3 -c 'import ensurepip' 2>/dev/null; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && python3 -m venv /opt/venv
# Behind a TLS-intercepting proxy pip needs its CA: pass the PEM text (certificates, never keys) as
# --build-arg EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)". Build stage only:
# the runtime image neither contains nor trusts it.
ARG EXTRA_CA_CERTS=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      { cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null || true; printf '%s\n' "$EXTRA_CA_CERTS"; } >/etc/ssl/build-ca.pem \
      && printf '[global]\ncert = /etc/ssl/build-ca.pem\n' >/etc/pip.conf; \
    fi
WORKDIR /src
# Dependencies first (their wheels are cached while only the code changes), then the project.
COPY pyproject.toml README.md ./
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >/tmp/requirements.txt \
 && /opt/venv/bin/pip wheel -q -r /tmp/requirements.txt -w /wheels
COPY coderunner ./coderunner
RUN /opt/venv/bin/pip wheel -q --no-deps . -w /wheels \
 && /opt/venv/bin/pip install -q --no-index --find-links /wheels coderunner \
 && /opt/venv/bin/pip uninstall -q -y pip \
 && /opt/venv/bin/coderunner --help >/dev/null

FROM ${BASE_IMAGE} AS runtime
USER root
ARG APP_UID=10001
RUN python3 --version \
 && groupadd --gid ${APP_UID} coderunner \
 && useradd --uid ${APP_UID} --gid coderunner --create-home --home-dir /home/coderunner \
      --shell /usr/sbin/nologin coderunner
# Root-owned: the service can not change its own code.
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/coderunner \
    TMPDIR=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A writable home; Faust keeps its (unused) local state under $TMPDIR/coderunner-faust-<app id>.
WORKDIR /home/coderunner
USER coderunner:coderunner
EXPOSE 9084 8084
# Liveness on the HTTP port the process was given (HTTP_PORT); /health answers in every role
# that serves HTTP (serve, api). A `worker` container should set --no-healthcheck or its own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HTTP_PORT', '8084'), timeout=4)"]
ENTRYPOINT ["coderunner"]
CMD ["serve"]
