"""Model registry: detectors in the BentoML model store, champions in one JSON file.

Reading the champion pointers (:func:`read_champions`, :func:`champion`,
:func:`champion_path`, :func:`pointer_version`) needs only json and pathlib, so a
service can poll them without importing BentoML or TensorFlow. Everything that
touches the model store imports BentoML inside the function.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ids import settings
from ids.catalog import TASKS, get_spec

logger = logging.getLogger(__name__)

REGISTRY_DIR_ENV = "IDS_REGISTRY_DIR"
CHAMPIONS_FILE = "champions.json"
DETECTOR_FILE = "detector.json"
DETECTOR_DIR = "detector"
CARD_FILE = "MODEL_CARD.md"
MODEL_PREFIX = "ids-"

_TAG_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def registry_dir() -> Path:
    """Folder of the champion pointers: ``$IDS_REGISTRY_DIR`` or ``home/registry``."""
    value = os.environ.get(REGISTRY_DIR_ENV)
    if value:
        return Path(value).expanduser().resolve()
    return settings.project_home() / "registry"


def champions_file() -> Path:
    """Path of ``champions.json``."""
    return registry_dir() / CHAMPIONS_FILE


def read_champions() -> dict[str, dict]:
    """All champion pointers, keyed ``"dataset/task"``; ``{}`` before any promotion."""
    path = champions_file()
    try:
        text = path.read_text(encoding="utf8")
    except FileNotFoundError:
        return {}
    try:
        pointers = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"champion pointers in {path} are not valid JSON ({exc}); restore the "
            "file from a backup or delete it and promote the champions again"
        ) from exc
    if not isinstance(pointers, dict):
        raise ValueError(
            f"champion pointers in {path} must be a JSON object, got "
            f"{type(pointers).__name__}; delete the file and promote again"
        )
    return pointers


def champion(dataset: str, task: str) -> dict | None:
    """The champion pointer of one dataset and task, or None if none was promoted."""
    return read_champions().get(_key(dataset, task))


def champion_path(dataset: str, task: str) -> Path | None:
    """Folder of the champion detector of one dataset and task, or None."""
    entry = champion(dataset, task)
    return Path(entry["path"]) if entry else None


def pointer_version() -> str:
    """A cheap token that changes whenever ``champions.json`` changes."""
    path = champions_file()
    try:
        content = path.read_bytes()
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        return "absent"
    return f"{mtime_ns}-{hashlib.md5(content).hexdigest()}"


def model_name(dataset: str, task: str) -> str:
    """BentoML model name of a dataset and task, e.g. ``ids-network-binary``."""
    parts = [
        _TAG_UNSAFE.sub("-", part.lower()).strip("-._") for part in (dataset, task)
    ]
    return f"{MODEL_PREFIX}{parts[0]}-{parts[1]}"[:63]


def register_detector(folder: str | Path, *, card_notes: str = "") -> str:
    """Copy a saved detector folder into the model store with a model card.

    Args:
        folder: A folder written by ``Detector.save``; must hold ``detector.json``.
        card_notes: Known limits of the model, written into the card as given.

    Returns:
        The tag of the new model, ``"name:version"``.
    """
    folder = Path(folder)
    info = _read_detector_json(folder)
    dataset, task = info["dataset"], info["task"]
    _check_key(dataset, task)

    bentoml, store = _model_store()
    metrics = _flat_metrics(info.get("metrics") or {})
    fingerprint = info.get("fingerprint") or {}
    labels = {
        "dataset": dataset,
        "task": task,
        "model": str(_config_value(info, "model")),
        "optimizer": str(_config_value(info, "optimizer")),
    }
    metadata = {
        "metrics": metrics,
        "fingerprint_md5": str(fingerprint.get("md5", "")),
        "data_file": str(fingerprint.get("file", "")),
        "release": str(fingerprint.get("release", "")),
    }
    with bentoml.models.create(
        model_name(dataset, task), labels=labels, metadata=metadata, _model_store=store
    ) as model_ref:
        shutil.copytree(folder, Path(model_ref.path) / DETECTOR_DIR)
        card = _model_card(str(model_ref.tag), info, labels, metrics, card_notes)
        (Path(model_ref.path) / CARD_FILE).write_text(card, encoding="utf8")
    tag = str(model_ref.tag)

    logger.info("registered %s from %s (metrics %s)", tag, folder, metrics)
    return tag


def list_models(dataset: str | None = None) -> list[dict]:
    """Registered detectors, oldest first, optionally of one dataset only."""
    if dataset is not None:
        get_spec(dataset)

    _, store = _model_store()
    models = []
    for model in store.list():
        labels = model.info.labels
        if not model.tag.name.startswith(MODEL_PREFIX) or "dataset" not in labels:
            continue
        if dataset is not None and labels["dataset"] != dataset:
            continue
        models.append(_describe(model))
    return sorted(models, key=lambda entry: entry["created_at"])


def detector_folder(tag: str) -> Path:
    """Folder of a registered model's detector inside the model store."""
    return _get_model(tag)[0]


def promote_champion(
    dataset: str, task: str, tag: str, reason: str, metrics: dict
) -> dict:
    """Point the champion of ``dataset/task`` at ``tag``; returns the new pointer.

    The former champion's tag goes to the front of ``previous`` so that
    :func:`rollback_champion` can return to it.
    """
    _check_key(dataset, task)
    if not reason or not isinstance(reason, str):
        raise ValueError(
            f"promotion needs a reason (a non-empty string), got {reason!r}"
        )
    if not isinstance(metrics, dict):
        raise ValueError(f"metrics must be a dict of name to number, got {metrics!r}")
    path, model = _get_model(tag)
    labels = model.info.labels
    if (labels.get("dataset"), labels.get("task")) != (dataset, task):
        raise ValueError(
            f"model {tag!r} was trained for {labels.get('dataset')}/"
            f"{labels.get('task')}, not {dataset}/{task}; promote it under its own "
            "dataset and task"
        )
    tag = str(model.tag)

    with _locked_pointers() as pointers:
        current = pointers.get(_key(dataset, task))
        previous = list(current["previous"]) if current else []
        if current and current["tag"] != tag:
            previous.insert(0, current["tag"])
        entry = _entry(tag, path, reason, _flat_metrics(metrics), previous)
        pointers[_key(dataset, task)] = entry

    logger.info("promoted %s to champion of %s/%s: %s", tag, dataset, task, reason)
    return entry


def rollback_champion(dataset: str, task: str) -> dict:
    """Make the previous champion of ``dataset/task`` the champion again."""
    _check_key(dataset, task)

    with _locked_pointers() as pointers:
        current = pointers.get(_key(dataset, task))
        if not current or not current["previous"]:
            what = f"champion {current['tag']!r}" if current else "no champion at all"
            raise LookupError(
                f"cannot roll back {dataset}/{task}: it has {what} and no previous "
                "champion; promote a registered model instead (see list_models)"
            )
        tag, *older = current["previous"]
        path, model = _get_model(tag)
        reason = f"rollback from {current['tag']}"
        metrics = model.info.metadata.get("metrics", {})
        entry = _entry(tag, path, reason, _flat_metrics(metrics), older)
        pointers[_key(dataset, task)] = entry

    logger.info("rolled %s/%s back from %s to %s", dataset, task, current["tag"], tag)
    return entry


def _key(dataset: str, task: str) -> str:
    return f"{dataset}/{task}"


def _check_key(dataset: str, task: str) -> None:
    get_spec(dataset)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")


def _entry(tag: str, path: Path, reason: str, metrics: dict, previous: list) -> dict:
    return {
        "tag": tag,
        "path": str(path),
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": reason,
        "metrics": metrics,
        "previous": previous,
    }


@contextlib.contextmanager
def _locked_pointers() -> Iterator[dict]:
    """Read-modify-write of ``champions.json`` under an exclusive lock file.

    The caller mutates the yielded dict; it is written back atomically (temp file
    in the same folder, then ``os.replace``) only if the block succeeds, so a
    reader sees either the old file or the new one, never half of one.
    """
    path = champions_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(CHAMPIONS_FILE + ".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pointers = read_champions()
            yield pointers
            _write_atomically(path, json.dumps(pointers, indent=2, sort_keys=True))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _model_store() -> tuple[Any, Any]:
    """bentoml and a model store on the BENTOML_HOME resolved now.

    BentoML fixes its home at first use; handing it the store explicitly keeps
    every call on the home the environment names at the time of the call.
    """
    os.environ.setdefault("BENTOML_HOME", str(settings.bentoml_home()))
    for key, value in settings.DEFAULT_ENV.items():
        os.environ.setdefault(key, value)
    import bentoml
    from bentoml._internal.models import ModelStore

    models_dir = settings.bentoml_home() / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    return bentoml, ModelStore(models_dir)


def _get_model(tag: str) -> tuple[Path, Any]:
    if not isinstance(tag, str) or ":" not in tag:
        raise ValueError(f"expected a model tag 'name:version', got {tag!r}")
    _, store = _model_store()
    from bentoml.exceptions import NotFound

    try:
        model = store.get(tag)
    except NotFound as exc:
        raise LookupError(
            f"model {tag!r} is not in the model store under "
            f"{settings.bentoml_home()}; "
            "register it first or pick a tag from list_models()"
        ) from exc
    return Path(model.path) / DETECTOR_DIR, model


def _describe(model: Any) -> dict:
    labels = model.info.labels
    return {
        "tag": str(model.tag),
        "dataset": labels.get("dataset"),
        "task": labels.get("task"),
        "model": labels.get("model"),
        "optimizer": labels.get("optimizer"),
        "metrics": dict(model.info.metadata.get("metrics", {})),
        "fingerprint_md5": model.info.metadata.get("fingerprint_md5"),
        "created_at": model.creation_time.isoformat(),
        "path": str(Path(model.path) / DETECTOR_DIR),
    }


def _read_detector_json(folder: Path) -> dict:
    path = folder / DETECTOR_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} is not a saved detector: {DETECTOR_FILE} is missing; pass "
            "a folder written by Detector.save"
        )
    info = json.loads(path.read_text(encoding="utf8"))
    missing = [key for key in ("dataset", "task") if not info.get(key)]
    if missing:
        raise ValueError(
            f"{path} lacks {missing}; got keys {sorted(info)}. Save the detector "
            "again with a current ids.detector"
        )
    return info


def _config_value(info: dict, key: str) -> Any:
    config = info.get("config") or {}
    return info.get(key) or config.get(key) or "unknown"


def _flat_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (possibly nested) metrics dict as floats, keys dotted."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flat_metrics(value, f"{key}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat


def _model_card(
    tag: str, info: dict, labels: dict, metrics: dict, card_notes: str
) -> str:
    fingerprint = info.get("fingerprint") or {}
    config = info.get("config") or {}
    protocol = info.get("protocol") or config.get("protocol") or config.get("split")
    scores = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()))
    lines = [
        f"# Model card: {tag}",
        "",
        f"Intrusion detector for the ToN-IoT `{labels['dataset']}` dataset, "
        f"{labels['task']} task; model {labels['model']}, "
        f"optimizer {labels['optimizer']}.",
        "",
        "## Data",
        "",
        f"- file: {fingerprint.get('file', 'unknown')}",
        f"- release: {fingerprint.get('release', 'unknown')}",
        f"- rows read: {fingerprint.get('rows', 'unknown')}",
        f"- md5: {fingerprint.get('md5', 'unknown')}",
        "",
        "## Protocol",
        "",
        json.dumps(protocol, sort_keys=True) if protocol else "not recorded",
        "",
        "## Scores",
        "",
        "| metric | value |\n|---|---|\n" + scores if scores else "none recorded",
        "",
        "## Known limits",
        "",
        card_notes.strip() or "none stated",
        "",
    ]
    return "\n".join(lines)
