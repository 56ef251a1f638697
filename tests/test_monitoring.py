"""Drift core on real network and fridge slices: verdicts, decisions, reports, store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ids.catalog import CATEGORICAL, dataset_path, get_spec, resolve_data_dir
from ids.data import input_columns, normalize_records, normalize_targets
from ids.drift_workspace import add_to_workspace
from ids.monitoring import DriftConfig, DriftResult, compute_drift, screen_columns
from ids.retrain_decision import decide_retrain

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
PREDICTION = "predicted"


def _kinds(name: str) -> dict[str, str]:
    spec = get_spec(name)
    return {
        c: CATEGORICAL if spec.columns.get(c) == CATEGORICAL else "numeric"
        for c in input_columns(spec)
    }


def _with_prediction(records: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    # The binary label stands in for a detector's output: a real column of the
    # file whose mix moves with the attack mix.
    frame = records[columns].copy()
    frame[PREDICTION] = np.where(records["label"] == 1, "attack", "normal")
    return frame


def _read_slice(name: str, share: float, seed: int = 0) -> pd.DataFrame:
    """Normalised records of a random ``share`` of a file's rows, with targets.

    Parsing only the kept lines keeps the network slice at a few seconds where
    ``load_dataset`` reads and fingerprints all 211,043 rows.
    """
    spec = get_spec(name)
    path = dataset_path(spec, resolve_data_dir())
    keep = np.random.default_rng(seed).random(2_000_000) < share
    raw = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",
        skiprows=lambda line: line > 0 and not keep[line],
    )
    targets = normalize_targets(raw, path.name)
    return pd.concat([normalize_records(raw, spec), targets], axis=1)


@pytest.fixture(scope="module")
def network():
    """A random 10% of the network rows: reference, stable and shifted windows."""
    records = _read_slice("network", share=0.10)
    columns = input_columns(get_spec("network"))
    reference = records.sample(8_000, random_state=0)
    rest = records.drop(reference.index)
    shifted = rest[rest["type"].isin(["ddos", "scanning"])]
    return {
        "columns": columns,
        "reference": _with_prediction(reference, columns),
        "stable": _with_prediction(rest.sample(6_000, random_state=1), columns),
        "shifted": _with_prediction(shifted, columns),
    }


@pytest.fixture(scope="module")
def stable(network, tmp_path_factory):
    report = tmp_path_factory.mktemp("drift") / "reports" / "stable.html"
    return compute_drift(
        network["reference"],
        network["stable"],
        _kinds("network"),
        report_path=report,
        prediction_column=PREDICTION,
    )


@pytest.fixture(scope="module")
def shifted(network):
    return compute_drift(
        network["reference"],
        network["shifted"],
        _kinds("network"),
        prediction_column=PREDICTION,
    )


def test_compute_drift_stable_window_keeps_model(stable):
    decision = decide_retrain(stable, DriftConfig(), None, NOW)

    assert not decision.retrain, decision.reason
    assert stable.drift_share < DriftConfig().drift_share_threshold
    assert decision.reason.startswith("no drift")
    assert stable.prediction_drift["drifted"] is False
    assert stable.rows_current == 6_000 and stable.rows_reference == 8_000


def test_compute_drift_shifted_mix_asks_for_retrain(shifted):
    decision = decide_retrain(shifted, DriftConfig(), None, NOW)

    assert decision.retrain, decision.reason
    assert shifted.drift_share >= DriftConfig().drift_share_threshold
    assert set(shifted.drifted_columns) & {"service", "conn_state", "dns_qtype"}
    assert shifted.prediction_drift["drifted"] is True
    assert "prediction" not in shifted.compared_columns


def test_compute_drift_uses_distance_methods_for_large_reference(stable):
    methods = {c["column"]: c["method"] for c in stable.columns if not c["note"]}

    assert methods["proto"] == "Jensen-Shannon distance"
    assert methods["duration"] == "Wasserstein distance (normed)"
    assert all(c["threshold"] == 0.1 for c in stable.columns if not c["note"])


def test_compute_drift_compares_counters_on_log_scale(stable):
    scales = {c["column"]: c["scale"] for c in stable.columns if not c["note"]}

    assert scales["src_bytes"] == scales["duration"] == "log1p"
    assert scales["proto"] is None and scales["dns_qclass"] is None


def test_compute_drift_excludes_free_text_columns(stable):
    for column in ("http_uri", "http_user_agent", "ssl_subject", "ssl_issuer"):
        assert stable.skipped[column].startswith("excluded"), column
    assert "dns_query" not in stable.skipped  # already dropped as a leakage column


def test_compute_drift_writes_html_report(stable):
    assert stable.html_path.is_file()
    html = stable.html_path.read_text(encoding="utf-8")
    assert len(html) > 10_000 and "conn_state" in html


@pytest.fixture(scope="module")
def broken_window(network):
    """600 real rows with one column removed, one emptied, one made constant."""
    reference = network["reference"][network["columns"]].copy()
    current = network["stable"][network["columns"]].iloc[:600].copy()
    current = current.drop(columns=["proto"])
    current["duration"] = np.nan
    reference["constant_flag"] = 1.0
    current["constant_flag"] = 1.0
    reference["many_levels"] = [f"host{i}" for i in range(len(reference))]
    current["many_levels"] = "host1"
    return reference, current


@pytest.fixture(scope="module")
def broken(broken_window):
    return compute_drift(*broken_window, _kinds("network"))


@pytest.mark.parametrize(
    "column, note",
    [
        ("proto", "missing in current"),
        ("duration", "skipped: all null (current)"),
        ("constant_flag", "constant"),
        ("many_levels", "excluded: 8000 distinct values in reference"),
    ],
)
def test_compute_drift_lists_column_it_cannot_compare(broken, column, note):
    assert broken.skipped[column].startswith(note)
    assert column not in broken.drifted_columns


def test_compute_drift_compares_remaining_columns_of_broken_window(broken):
    assert "conn_state" in broken.compared_columns
    assert broken.snapshot is not None


def test_decide_retrain_refuses_window_under_min_records(broken):
    decision = decide_retrain(broken, DriftConfig(min_records=1000), None, NOW)

    assert not decision.retrain
    assert "600 records is under min_records=1000" in decision.reason


def test_decide_retrain_refuses_empty_window(network):
    empty = network["stable"].iloc[:0]
    result = compute_drift(network["reference"], empty, _kinds("network"))
    decision = decide_retrain(result, DriftConfig(), None, NOW)

    assert result.snapshot is None and result.drift_share == 0.0
    assert set(result.skipped.values()) >= {"skipped: empty window"}
    assert not decision.retrain
    assert decision.reason.startswith("empty window")


@pytest.mark.parametrize(
    "minutes_ago, retrain, words",
    [(30, False, "cooldown"), (60 * 24, True, "drift")],
)
def test_decide_retrain_respects_cooldown(shifted, minutes_ago, retrain, words):
    last = NOW - timedelta(minutes=minutes_ago)
    decision = decide_retrain(shifted, DriftConfig(cooldown_minutes=360), last, NOW)

    assert decision.retrain is retrain
    assert decision.reason.startswith(words)


def test_decide_retrain_rejects_naive_and_aware_times(shifted):
    with pytest.raises(ValueError, match="mix naive and timezone-aware"):
        decide_retrain(shifted, DriftConfig(), datetime(2026, 1, 1), NOW)


@pytest.mark.parametrize(
    "reference, current, kinds, message",
    [
        (pd.DataFrame(), pd.DataFrame(), None, "reference has 0 rows"),
        (pd.DataFrame({"a": [1.0]}), [{"a": 1.0}], None, "current must be a pandas"),
        (pd.DataFrame({"a": [1.0]}), pd.DataFrame(), {"a": "text"}, "has kind 'text'"),
    ],
)
def test_compute_drift_rejects_bad_input(reference, current, kinds, message):
    with pytest.raises(ValueError, match=message):
        compute_drift(reference, current, kinds)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"drift_share_threshold": 0.0}, r"drift_share_threshold=0.0 .*\(0, 1\]"),
        ({"min_records": 0}, "min_records=0 is out of range"),
        ({"max_current_rows": 1}, "max_current_rows=1 .* None or an integer >= 2"),
        ({"cooldown_minutes": -1}, "cooldown_minutes=-1 .* minutes >= 0"),
    ],
)
def test_drift_config_rejects_bad_values(options, message):
    with pytest.raises(ValueError, match=message):
        DriftConfig(**options)


def test_add_to_workspace_keeps_history_per_dataset(stable, shifted, fridge, tmp_path):
    from evidently.ui.workspace import Workspace

    first = add_to_workspace(stable, tmp_path / "ws", "network")
    second = add_to_workspace(shifted, tmp_path / "ws", "network")
    add_to_workspace(fridge["attacks"], tmp_path / "ws", "fridge")

    workspace = Workspace(str(tmp_path / "ws"))
    projects = {p.name: p for p in workspace.list_projects()}
    assert set(projects) == {"network", "fridge"}
    runs = {str(r) for r in workspace.list_runs(projects["network"].id)}
    assert runs == {first, second}
    stored = workspace.get_run(projects["network"].id, second)
    shares = [
        r.share.value
        for r in stored.metric_results.values()
        if type(r).__name__ == "CountValue"
    ]
    assert shares == [pytest.approx(shifted.drift_share)]


def test_add_to_workspace_rejects_result_without_run(tmp_path):
    empty = DriftResult(0.0, [], [], rows_reference=10, rows_current=0)

    with pytest.raises(ValueError, match="holds no Evidently run"):
        add_to_workspace(empty, tmp_path / "ws", "network")


@pytest.fixture(scope="module")
def fridge():
    """Normal fridge reference against a later calm window, a warm spell, attacks."""
    records = _read_slice("fridge", share=0.5)
    columns = input_columns(get_spec("fridge"))
    normal = records[records["type"] == "normal"]
    reference = normal.sample(5_000, random_state=0)[columns]
    rest = normal.drop(reference.index)
    warm = rest[rest["fridge_temperature"] >= 9].sample(3_000, random_state=1)
    attacks = records[records["type"] != "normal"].sample(3_000, random_state=1)
    kinds = _kinds("fridge")
    return {
        "kinds": kinds,
        "calm": compute_drift(reference, rest.sample(3_000, random_state=1), kinds),
        "warm": compute_drift(reference, warm[columns], kinds),
        "attacks": compute_drift(reference, attacks[columns], kinds),
    }


def test_compute_drift_fridge_tests_categorical_level_shift(fridge):
    verdicts = {c["column"]: c for c in fridge["warm"].columns}

    assert fridge["kinds"]["temp_condition"] == CATEGORICAL
    assert verdicts["temp_condition"]["method"] == "Jensen-Shannon distance"
    assert verdicts["temp_condition"]["drifted"]
    assert verdicts["fridge_temperature"]["method"] == "Wasserstein distance (normed)"
    assert decide_retrain(fridge["warm"], DriftConfig(), None, NOW).retrain
    assert not decide_retrain(fridge["calm"], DriftConfig(), None, NOW).retrain


def test_compute_drift_fridge_attack_rows_share_normal_values(fridge):
    # In the released fridge file the attack rows carry the same temperature
    # and condition distributions as normal rows (means 7.03-7.22 per type):
    # value drift cannot see the attack mix there, and must not pretend to.
    assert fridge["attacks"].drift_share == 0.0
    assert not decide_retrain(fridge["attacks"], DriftConfig(), None, NOW).retrain


def test_screen_columns_explains_each_column(network):
    notes = screen_columns(network["reference"], network["stable"], _kinds("network"))

    assert notes["conn_state"] == ""
    assert notes["http_uri"].startswith("excluded")
