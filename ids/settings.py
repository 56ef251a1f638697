"""Where the project keeps its state: one home folder, overridable per part.

Nothing here creates folders at import; call :func:`ensure_home` from an entry
point.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HOME_ENV = "IDS_HOME"


def project_home() -> Path:
    """The project's home folder: ``$IDS_HOME`` or ``<repo>/home``."""
    return Path(os.environ.get(HOME_ENV) or REPO_ROOT / "home").expanduser().resolve()


def _sub(env: str, name: str) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser().resolve() if value else project_home() / name


def runs_dir() -> Path:
    """Training runs (one folder per run): ``$IDS_RUNS_DIR`` or ``home/runs``."""
    return _sub("IDS_RUNS_DIR", "runs")


def reports_dir() -> Path:
    """Drift and training reports: ``$IDS_REPORTS_DIR`` or ``home/reports``."""
    return _sub("IDS_REPORTS_DIR", "reports")


def inference_log_dir() -> Path:
    """The service's inference log: ``$IDS_INFERENCE_LOG`` or ``home/inference_log``."""
    return _sub("IDS_INFERENCE_LOG", "inference_log")


def incoming_dir() -> Path:
    """Newly labeled rows per dataset: ``$IDS_INCOMING_DIR`` or ``home/incoming``."""
    return _sub("IDS_INCOMING_DIR", "incoming")


def bentoml_home() -> Path:
    """The BentoML model store: ``$BENTOML_HOME`` or ``home/bentoml``."""
    return _sub("BENTOML_HOME", "bentoml")


def prefect_home() -> Path:
    """Prefect's state: ``$PREFECT_HOME`` or ``home/prefect``."""
    return _sub("PREFECT_HOME", "prefect")


# Privacy and quiet defaults for every entry point; set only where unset.
DEFAULT_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "BENTOML_DO_NOT_TRACK": "True",
    "DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "False",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


def ensure_home() -> Path:
    """Create the home folders and set the tools' env defaults; returns home."""
    home = project_home()
    for path in (runs_dir(), reports_dir(), inference_log_dir(), incoming_dir()):
        path.mkdir(parents=True, exist_ok=True)
    for key, value in DEFAULT_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("BENTOML_HOME", str(bentoml_home()))
    os.environ.setdefault("PREFECT_HOME", str(prefect_home()))
    os.environ.setdefault("KERAS_HOME", str(home / "keras"))
    return home
