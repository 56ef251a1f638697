"""After a promotion: tell the running service, optionally build a new bento."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ids.settings import REPO_ROOT

logger = logging.getLogger(__name__)

SERVICE_URL_ENV = "IDS_SERVICE_URL"
BUILD_BENTO_ENV = "IDS_BUILD_BENTO"
BENTOFILE = REPO_ROOT / "bentos" / "bentofile.yaml"
RELOAD_TIMEOUT_S = 10.0
BUILD_TIMEOUT_S = 1800


def wants_bento(build_bento: bool | None) -> bool:
    """``build_bento`` if given, else whether ``$IDS_BUILD_BENTO`` is 1/true."""
    if build_bento is not None:
        return bool(build_bento)
    return os.environ.get(BUILD_BENTO_ENV, "").strip().lower() in ("1", "true", "yes")


def notify_service(service_url: str | None) -> str:
    """POST ``<service>/reload`` so a running service loads the new champions.

    Best effort: the service also polls the champion pointers, so a failure
    here is logged and reported, never raised.
    """
    url = service_url or os.environ.get(SERVICE_URL_ENV)
    if not url:
        return f"no service to notify (${SERVICE_URL_ENV} unset)"
    import httpx

    endpoint = url.rstrip("/") + "/reload"
    try:
        response = httpx.post(endpoint, timeout=RELOAD_TIMEOUT_S)
    except httpx.HTTPError as exc:
        logger.warning("reload of %s failed: %s", endpoint, exc)
        return f"reload of {endpoint} failed: {exc}"
    logger.info("reload of %s answered %d", endpoint, response.status_code)
    return f"reload of {endpoint} answered {response.status_code}"


def build_bento(bentofile: Path = BENTOFILE) -> str:
    """Run ``bentoml build`` on the project's bentofile; returns the bento's tag.

    Raises:
        FileNotFoundError: The bentofile is missing.
        RuntimeError: ``bentoml build`` failed; the message holds its output.
    """
    if not bentofile.is_file():
        raise FileNotFoundError(
            f"bentofile {str(bentofile)!r} not found; the service's bento is "
            f"declared there. Unset ${BUILD_BENTO_ENV} to skip building"
        )
    # The build context is the repository, so the bento can include ``ids``.
    command = [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile)]
    command += ["--output", "tag", str(REPO_ROOT)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(command)}` exited with {done.returncode}:\n{output[-3000:]}"
        )
    tags = [line for line in output.splitlines() if line.startswith("__tag__:")]
    built = tags[-1].removeprefix("__tag__:") if tags else output.splitlines()[-1]
    logger.info("bento built: %s", built)
    return built


@task(name="package", cache_policy=NO_CACHE)
def package_champions(
    promoted: list[str], build_bento_flag: bool | None, service_url: str | None
) -> dict:
    """Build a bento holding the current champions if asked; notify the service."""
    built = build_bento() if wants_bento(build_bento_flag) else "not requested"
    reload = notify_service(service_url)
    create_markdown_artifact(
        markdown=(
            f"## Package after promotion of {', '.join(promoted)}\n\n"
            f"- bento: {built}\n- service: {reload}\n"
        ),
        key="package",
        description="bento build and service reload after a promotion",
    )
    return {"bento": built, "reload": reload}
