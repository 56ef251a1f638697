"""Registry: real BentoML model store and champion pointers in tmp folders."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ids import registry
from ids.catalog import get_spec, resolve_data_dir
from ids.data import file_fingerprint

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh model store and pointer folder for one test."""
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    monkeypatch.setenv("IDS_REGISTRY_DIR", str(tmp_path / "registry"))
    return tmp_path


@pytest.fixture(scope="module")
def network_fingerprint():
    """Fingerprint of the real network file, as ids.data records it."""
    spec = get_spec("network")
    path = resolve_data_dir(None) / spec.relpath
    with open(path, "rb") as handle:
        rows = sum(1 for _ in handle) - 1
    return {"file": spec.relpath, "md5": file_fingerprint(path), "rows": rows}


def write_detector(folder, *, dataset="network", task="binary", f1=0.9, **extra):
    """A saved-detector folder as registry sees it: detector.json plus weights."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    info = {
        "dataset": dataset,
        "task": task,
        "metrics": {"test": {"f1_macro": f1, "accuracy": 0.95}, "epochs": 3},
        "fingerprint": {"file": "x.csv", "md5": "0" * 32, "release": "ts", "rows": 9},
        "config": {"model": "gru", "optimizer": "adam", "split": "60/15/15/10"},
        **extra,
    }
    (folder / "detector.json").write_text(json.dumps(info))
    (folder / "weights.bin").write_bytes(os.urandom(64))
    return folder


def test_register_detector_copies_folder_and_writes_card(store, network_fingerprint):
    source = write_detector(
        store / "run" / "gru-adam", fingerprint={**network_fingerprint, "release": "ts"}
    )

    tag = registry.register_detector(source, card_notes="Misses slow scans.")

    assert tag.startswith("ids-network-binary:")
    folder = registry.detector_folder(tag)
    assert folder.is_relative_to(store / "bentoml" / "models")
    assert (folder / "weights.bin").read_bytes() == (
        source / "weights.bin"
    ).read_bytes()
    assert json.loads((folder / "detector.json").read_text())["task"] == "binary"
    card = (folder.parent / "MODEL_CARD.md").read_text()
    assert network_fingerprint["md5"] in card
    assert f"rows read: {network_fingerprint['rows']}" in card
    assert "| test.f1_macro | 0.9000 |" in card
    assert "60/15/15/10" in card
    assert "Misses slow scans." in card
    [entry] = registry.list_models()
    assert entry["tag"] == tag
    assert (entry["model"], entry["optimizer"]) == ("gru", "adam")
    assert entry["metrics"] == {
        "test.f1_macro": 0.9,
        "test.accuracy": 0.95,
        "epochs": 3.0,
    }
    assert entry["fingerprint_md5"] == network_fingerprint["md5"]


@pytest.mark.parametrize(
    ("dataset", "task", "expected"),
    [
        ("network", "binary", "ids-network-binary"),
        ("gps_tracker", "multiclass", "ids-gps_tracker-multiclass"),
        ("Net Work!", "binary", "ids-net-work-binary"),
    ],
)
def test_model_name_sanitises_to_bentoml_tag(dataset, task, expected):
    assert registry.model_name(dataset, task) == expected


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"drop": "detector.json"}, FileNotFoundError, "detector.json is missing"),
        ({"task": ""}, ValueError, r"lacks \['task'\]"),
        ({"dataset": "mars"}, ValueError, "unknown dataset 'mars'"),
        ({"task": "ternary"}, ValueError, "unknown task 'ternary'"),
    ],
)
def test_register_detector_rejects_bad_folder(store, change, error, match):
    drop = change.pop("drop", None)
    source = write_detector(store / "bad", **change)
    if drop:
        (source / drop).unlink()

    with pytest.raises(error, match=match):
        registry.register_detector(source)
    assert not (store / "bentoml" / "models" / "ids-network-binary").exists()


def test_promote_then_rollback_returns_to_previous_champion(store):
    first = registry.register_detector(write_detector(store / "a", f1=0.8))
    second = registry.register_detector(write_detector(store / "b", f1=0.9))
    assert registry.champion("network", "binary") is None

    registry.promote_champion("network", "binary", first, "first", {"f1": 0.8})
    entry = registry.promote_champion(
        "network", "binary", second, "better f1", {"f1": 0.9}
    )

    assert entry["previous"] == [first]
    assert registry.champion_path("network", "binary") == registry.detector_folder(
        second
    )
    assert registry.read_champions()["network/binary"]["reason"] == "better f1"

    back = registry.rollback_champion("network", "binary")

    assert back["tag"] == first
    assert back["previous"] == []
    assert back["reason"] == f"rollback from {second}"
    assert back["metrics"]["test.f1_macro"] == 0.8
    assert registry.champion("network", "binary") == back
    with pytest.raises(LookupError, match=f"champion '{first}' and no previous"):
        registry.rollback_champion("network", "binary")


def test_promote_champion_same_tag_keeps_history(store):
    first = registry.register_detector(write_detector(store / "a"))
    second = registry.register_detector(write_detector(store / "b"))
    registry.promote_champion("network", "binary", first, "first", {})
    registry.promote_champion("network", "binary", second, "second", {})

    entry = registry.promote_champion("network", "binary", second, "re-run", {})

    assert entry["previous"] == [first]


def test_rollback_champion_without_champion_says_so(store):
    with pytest.raises(LookupError, match="no champion at all"):
        registry.rollback_champion("network", "binary")


@pytest.mark.parametrize(
    ("dataset", "task", "tag", "reason", "match"),
    [
        ("fridge", "binary", None, "r", "trained for network/binary, not fridge"),
        ("network", "multiclass", None, "r", "not network/multiclass"),
        ("network", "binary", "ids-network-binary:nope", "r", "not in the model store"),
        ("network", "binary", "no-version", "r", "expected a model tag"),
        ("network", "binary", None, "", "needs a reason"),
        ("network", "binary", None, "r", "metrics must be a dict"),
    ],
)
def test_promote_champion_rejects_bad_input(store, dataset, task, tag, reason, match):
    real = registry.register_detector(write_detector(store / "a"))
    metrics = [0.9] if match.startswith("metrics") else {"f1": 0.9}

    with pytest.raises((ValueError, LookupError), match=match):
        registry.promote_champion(dataset, task, tag or real, reason, metrics)
    assert registry.read_champions() == {}


def test_pointer_version_changes_with_each_promotion(store):
    first = registry.register_detector(write_detector(store / "a"))
    second = registry.register_detector(write_detector(store / "b"))
    versions = [registry.pointer_version()]

    for tag in (first, second, first):
        registry.promote_champion("network", "binary", tag, "swap", {})
        versions.append(registry.pointer_version())

    assert versions[0] == "absent"
    assert len(set(versions)) == 4
    assert registry.pointer_version() == versions[-1]


def test_list_models_filters_by_dataset(store):
    network = registry.register_detector(write_detector(store / "a"))
    fridge = registry.register_detector(
        write_detector(store / "b", dataset="fridge", task="multiclass")
    )

    assert [m["tag"] for m in registry.list_models()] == [network, fridge]
    assert [m["tag"] for m in registry.list_models("fridge")] == [fridge]
    with pytest.raises(ValueError, match="unknown dataset 'mars'"):
        registry.list_models("mars")


def test_read_champions_reports_corrupt_file(store):
    (store / "registry").mkdir()
    (store / "registry" / "champions.json").write_text("{half")

    with pytest.raises(ValueError, match="not valid JSON"):
        registry.read_champions()


CONCURRENT_DATASETS = ("network", "fridge", "thermostat", "weather")
ROUNDS = 6


def _promote_many(dataset, tags, barrier):
    barrier.wait()
    for round_ in range(ROUNDS):
        tag = tags[round_ % 2]
        registry.promote_champion(dataset, "binary", tag, f"round {round_}", {})


def test_promote_champion_from_four_processes_loses_no_update(store):
    tags = {
        dataset: [
            registry.register_detector(
                write_detector(store / f"{dataset}{i}", dataset=dataset)
            )
            for i in range(2)
        ]
        for dataset in CONCURRENT_DATASETS
    }
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(CONCURRENT_DATASETS))
    workers = [
        context.Process(target=_promote_many, args=(dataset, tags[dataset], barrier))
        for dataset in CONCURRENT_DATASETS
    ]

    for worker in workers:
        worker.start()
    reads = 0
    while any(worker.is_alive() for worker in workers):
        registry.read_champions()
        reads += 1
    for worker in workers:
        worker.join()

    assert [worker.exitcode for worker in workers] == [0] * len(workers)
    pointers = json.loads((store / "registry" / "champions.json").read_text())
    assert sorted(pointers) == sorted(f"{d}/binary" for d in CONCURRENT_DATASETS)
    for dataset in CONCURRENT_DATASETS:
        entry = pointers[f"{dataset}/binary"]
        assert entry["reason"] == f"round {ROUNDS - 1}"
        assert entry["tag"] == tags[dataset][(ROUNDS - 1) % 2]
        assert len(entry["previous"]) == ROUNDS - 1
    assert reads > 0
    assert not list((store / "registry").glob(".champions.json.*"))


def test_read_champions_imports_neither_bentoml_nor_tensorflow(store):
    tag = registry.register_detector(write_detector(store / "a"))
    registry.promote_champion("network", "binary", tag, "first", {})
    probe = (
        "import json, sys\n"
        "from ids import registry\n"
        "path = registry.champion_path('network', 'binary')\n"
        "registry.read_champions(); registry.pointer_version()\n"
        "heavy = [m for m in ('bentoml', 'tensorflow', 'keras') if m in sys.modules]\n"
        "print(json.dumps({'path': str(path), 'heavy': heavy}))\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    report = json.loads(result.stdout)
    assert report["heavy"] == []
    assert report["path"] == str(registry.detector_folder(tag))
