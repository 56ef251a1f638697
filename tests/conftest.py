"""Shared test set-up: a throw-away project home, real Prefect and BentoML servers."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT_S = 60.0

_SESSION_HOME: Path | None = None
_TIMINGS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Point every tool at a session home before any test imports one of them.

    BentoML and Prefect read their homes when first used, so this runs before
    collection rather than in a fixture.
    """
    global _SESSION_HOME
    _SESSION_HOME = Path(tempfile.mkdtemp(prefix="ids-test-home-"))
    os.environ["IDS_HOME"] = str(_SESSION_HOME)
    for tool in ("BENTOML_HOME", "PREFECT_HOME", "KERAS_HOME"):
        os.environ[tool] = str(_SESSION_HOME / tool.split("_")[0].lower())
    os.environ.update(
        {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "BENTOML_DO_NOT_TRACK": "True",
            "DO_NOT_TRACK": "1",
            "GX_ANALYTICS_ENABLED": "False",
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    os.environ.setdefault(
        "IDS_DATA_DIR", str((REPO_ROOT / "../shared/data/ton_iot").resolve())
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_HOME is not None:
        shutil.rmtree(_SESSION_HOME, ignore_errors=True)


def pytest_terminal_summary(terminalreporter) -> None:
    for name, seconds in _TIMINGS.items():
        terminalreporter.write_line(f"{name}: {seconds:.1f} s")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen, log_path: Path) -> float:
    """Poll ``url`` until it answers 200; returns the seconds waited."""
    import httpx

    started = time.monotonic()
    while time.monotonic() - started < SERVER_START_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with code {process.returncode} before {url} "
                f"answered; its log:\n{_tail(log_path)}"
            )
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"{url} did not answer within {SERVER_START_TIMEOUT_S:.0f} s; server "
        f"log:\n{_tail(log_path)}"
    )


def stop_process_group(process: subprocess.Popen) -> None:
    """Terminate a process started with ``start_new_session=True`` and its children."""
    if process.poll() is not None:
        return
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def bentoml_serve(log_path: Path, **env: str) -> Iterator[str]:
    """A real `bentoml serve` of the service on a free loopback port; yields its URL.

    ``env`` is added to this process's environment (an API token is not
    inherited); the server is polled until ready and stopped with its workers.
    """
    port = _free_port()
    environment = {**os.environ, **env}
    environment.pop("IDS_API_TOKEN", None)
    command = [sys.executable, "-m", "bentoml", "serve", "bentos.service:IDSService"]
    process = _spawn([*command, "--port", str(port)], environment, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(f"{url}/readyz", process, log_path)
        yield url
    finally:
        stop_process_group(process)


def _spawn(command: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    """Start a server from the repository root in its own session, output to a log."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return _free_port()


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """URL of one real Prefect server (SQLite) for the whole session.

    Sets ``PREFECT_API_URL`` for this process (env and Prefect's settings) and
    for subprocesses; the start-up time is shown in the terminal summary.
    """
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    log_path = home / "server.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_API_")
    }
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": (
                f"sqlite+aiosqlite:///{home / 'prefect.db'}"
            ),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "true",
            # The UI's pages call the API here, not at Prefect's default :4200.
            "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        }
    )
    command = [
        sys.executable,
        "-m",
        "prefect",
        "server",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = _spawn(command, env, log_path)
    url = f"http://127.0.0.1:{port}/api"
    try:
        startup_s = wait_for_health(f"{url}/health", process, log_path)
    except BaseException:
        stop_process_group(process)
        raise
    logger.info("Prefect server at %s answered after %.1f s", url, startup_s)
    _TIMINGS["Prefect server start-up"] = startup_s

    from prefect.settings import PREFECT_API_URL, temporary_settings

    old_url = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        if old_url is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = old_url
        stop_process_group(process)
