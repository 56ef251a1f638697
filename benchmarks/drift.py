"""Benchmark of the monitoring window on the real network file -> results/drift.json.

    .venv/bin/python benchmarks/drift.py

Runs offline: windows are written into a temporary inference log with
``ids.inference_log.write_batch`` and judged by ``flows.monitor.judge_window``,
the function the monitoring flow runs (log read -> drift -> decision, HTML
report written). Reference = 50,000 random training rows of the protocol split
(seed 0). The champion's predicted class is stood in for by the true ``type``
(a model of 0.99 accuracy predicts about that).

- drift_seconds: 100,000 current records (rows outside the reference) against
  the reference, Evidently already imported; the cold first call is reported too.
- stable_triggers: 10 windows of the replay split's rows (training mix).
- shift_triggered: a window of replay rows of xss, injection and password only.
- the same 100k windows without sampling, to check sampling changes no decision.
- stable triggers against a reference of distinct training vectors (what
  champions saved before reference_sample switched to a plain sample).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from flows.monitor import PREDICTION, judge_window, monitor_config
from ids.catalog import CATEGORICAL, get_spec
from ids.data import input_columns, load_dataset
from ids.inference_log import write_batch
from ids.monitoring import DriftConfig
from ids.replay import SHIFT_TYPES
from ids.training import protocol_frame, protocol_split

RESULTS = Path(__file__).parent / "results" / "drift.json"
TARGET_S = 8.0
WINDOWS = 10
START = datetime(2026, 1, 1, tzinfo=UTC)


def _log_window(frame, columns, root, index) -> tuple[datetime, datetime]:
    """Write one window as scored in its own minute; returns its bounds."""
    since = START + timedelta(minutes=index)
    batch = {c: frame[c].to_numpy() for c in columns}
    batch["attack_type"] = frame["type"].to_numpy().astype(object)
    write_batch("network", batch, scored_at=since + timedelta(seconds=1), root=root)
    return since, since + timedelta(minutes=1)


def _judge(reference, bounds, root, kinds, config, report=None) -> dict:
    started = time.perf_counter()
    verdict = judge_window(
        "network",
        "multiclass",
        reference,
        since=bounds[0],
        until=bounds[1],
        config=config,
        report_path=report,
        log_root=root,
        column_kinds=kinds,
    )
    seconds = time.perf_counter() - started
    result = verdict.result
    return {
        "records": verdict.records,
        "seconds": round(seconds, 2),
        "retrain": verdict.decision.retrain,
        "drift_share": None if result is None else round(result.drift_share, 3),
        "prediction_drift": None
        if result is None or not result.prediction_drift
        else round(result.prediction_drift["score"], 3),
        "reason": verdict.decision.reason,
    }


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    spec = get_spec("network")
    columns = input_columns(spec)
    kinds = {
        c: CATEGORICAL if spec.columns.get(c) == CATEGORICAL else "numerical"
        for c in columns
    }
    config = monitor_config()
    frame, _, _ = protocol_frame(load_dataset("network"))
    split = protocol_split(frame, 0)
    train = frame.iloc[split.train]
    reference = train[columns].sample(50_000, random_state=0)
    reference[PREDICTION] = train.loc[reference.index, "type"].to_numpy()
    distinct = train[columns].drop_duplicates()
    outside = frame.drop(index=reference.index)
    replay = frame.iloc[split.replay]
    out: dict = {"reference_rows": len(reference), "config": _config(config)}

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "log"
        reports = Path(tmp) / "reports"
        rng = np.random.default_rng(0)
        stable_100k = outside.iloc[rng.choice(len(outside), 100_000, replace=False)]
        pool = frame[frame["type"].isin(SHIFT_TYPES)]
        shift_100k = pool.iloc[rng.choice(len(pool), 100_000, replace=True)]
        bounds_stable = _log_window(stable_100k, columns, root, 0)
        bounds_shift = _log_window(shift_100k, columns, root, 1)

        cold = _judge(reference, bounds_stable, root, kinds, config, reports / "c.html")
        warm = _judge(reference, bounds_stable, root, kinds, config, reports / "w.html")
        shift_big = _judge(reference, bounds_shift, root, kinds, config)
        whole = replace(config, max_current_rows=None)
        unsampled = {
            "stable": _judge(reference, bounds_stable, root, kinds, whole),
            "shift": _judge(reference, bounds_shift, root, kinds, whole),
        }
        out.update(
            drift_seconds=warm["seconds"],
            drift_seconds_cold=cold["seconds"],
            drift_target_seconds=TARGET_S,
            window_100k_stable=warm,
            window_100k_shift=shift_big,
            window_100k_unsampled=unsampled,
            sampling_keeps_decisions=(
                unsampled["stable"]["retrain"] == warm["retrain"]
                and unsampled["shift"]["retrain"] == shift_big["retrain"]
            ),
            report_bytes=(reports / "w.html").stat().st_size,
        )

        order = replay.sample(frac=1.0, random_state=0)
        stable, stable_distinct = [], []
        for index, part in enumerate(np.array_split(np.arange(len(order)), WINDOWS)):
            bounds = _log_window(order.iloc[part], columns, root, 10 + index)
            stable.append(_judge(reference, bounds, root, kinds, config))
            stable_distinct.append(_judge(distinct, bounds, root, kinds, config))
        shift_rows = replay[replay["type"].isin(SHIFT_TYPES)]
        bounds = _log_window(shift_rows, columns, root, 30)
        shift = _judge(reference, bounds, root, kinds, config)

    out.update(
        stable_triggers=sum(w["retrain"] for w in stable),
        stable_windows=[
            {k: w[k] for k in ("records", "drift_share", "prediction_drift", "retrain")}
            for w in stable
        ],
        shift_triggered=shift["retrain"],
        shift_window=shift,
        stable_triggers_with_distinct_reference=sum(
            w["retrain"] for w in stable_distinct
        ),
        distinct_reference_drift_shares=[w["drift_share"] for w in stable_distinct],
        notes=(
            "prediction column = true type (stand-in for the champion's predicted "
            "class). distinct reference = the distinct training vectors (what "
            "champions saved before the plain sample), features only."
        ),
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps({k: out[k] for k in _HEADLINE}, indent=2))


_HEADLINE = (
    "drift_seconds",
    "drift_seconds_cold",
    "stable_triggers",
    "shift_triggered",
    "sampling_keeps_decisions",
    "stable_triggers_with_distinct_reference",
)


def _config(config: DriftConfig) -> dict:
    keys = (
        "min_records",
        "drift_share_threshold",
        "max_current_rows",
        "max_reference_rows",
    )
    return {k: getattr(config, k) for k in keys} | {"cooldown": config.cooldown_minutes}


if __name__ == "__main__":
    pd.set_option("mode.copy_on_write", True)
    main()
