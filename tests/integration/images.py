"""Docker helpers for the integration tests: the docker CLI (`docker_cli`), and the project's
two images, built the way `make build` and `make dind-image` build them where no registry is
reachable: FROM the local Debian bases, with the classic builder (it resolves FROM against local
images; BuildKit would try a registry).

- build_service_image(tag): the repository's Dockerfile FROM coderunner/runtime-python:bookworm
  (test_dockerfile.py, test_compose.py);
- build_dind_image(tag): images/dind FROM coderunner/base:bookworm (test_dind.py, test_compose.py).

Each fails the test, saying `make stack-up`, when its base is missing, and with the build's last
lines when the build fails; each prints and returns how long the build took (seconds).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICE_BASE = "coderunner/runtime-python:bookworm"
DIND_BASE = "coderunner/base:bookworm"
# A TLS-intercepting proxy's CA, if the host trusts one: pip in the service's build stage needs it.
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
SERVICE_BUILD_TIMEOUT = 480
DIND_BUILD_TIMEOUT = 600
TAIL_LINES = 40


def build_service_image(tag: str) -> float:
    """The service image (Dockerfile) FROM the local Python runtime image, tagged `tag`."""
    extra_ca = "".join(p.read_text() for p in sorted(EXTRA_CA_DIR.glob("*.crt")))
    return _build(
        "the service image (Dockerfile)",
        tag,
        SERVICE_BASE,
        REPO,
        ["--build-arg", f"EXTRA_CA_CERTS={extra_ca}"],
        SERVICE_BUILD_TIMEOUT,
    )


def build_dind_image(tag: str) -> float:
    """The DinD daemon image (images/dind) FROM the local Debian base, tagged `tag`."""
    return _build(
        "the DinD image (images/dind)",
        tag,
        DIND_BASE,
        REPO / "images" / "dind",
        [],
        DIND_BUILD_TIMEOUT,
    )


def _image_id(name: str) -> str | None:
    inspect = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return inspect.stdout.strip() if inspect.returncode == 0 else None


def _build(
    what: str, tag: str, base: str, context: Path, extra_args: list[str], timeout: float
) -> float:
    if _image_id(base) is None:
        pytest.fail(f"{base} is missing: run `make stack-up` (it builds the local images).")
    previous = _image_id(tag)
    started = time.monotonic()
    result = subprocess.run(
        ["docker", "build", "--force-rm", "--build-arg", f"BASE_IMAGE={base}", *extra_args,
         "-t", tag, str(context)],
        env=os.environ | {"DOCKER_BUILDKIT": "0"},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-TAIL_LINES:])
        hint = "" if _image_id(base) is not None else f"\n{base} is gone: run `make stack-up`."
        pytest.fail(f"docker build of {what} as {tag} failed ({result.returncode}):\n{tail}{hint}")
    if previous is not None and previous != _image_id(tag):
        # The image this tag named before is now untagged: remove it rather than let every run
        # leave a few hundred MB behind (kept when a container still uses it).
        subprocess.run(["docker", "image", "rm", previous], capture_output=True, check=False)
    print(f"\n{what} built as {tag} in {took:.1f} s")
    return took


def docker_cli(
    *args: str, timeout: float = 60, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker ARGS...`; with `check`, a non-zero exit fails the test with docker's stderr."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])}... exited {result.returncode}:\n{result.stderr}")
    return result
