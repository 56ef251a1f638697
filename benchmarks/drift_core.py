"""Calibrate and time the drift core on the real network records.

    .venv/bin/python benchmarks/drift_core.py              # timing + decisions
    .venv/bin/python benchmarks/drift_core.py --calibrate  # drift share per method

Reference = 50,000 random network rows; "stable" windows are other random rows
of the same class mix, "shifted" windows draw from a different mix of ``type``.
Calibration calls Evidently's own stat tests column by column (what its
DataDriftPreset runs, without the plots) so that many windows fit in minutes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ids.catalog import CATEGORICAL, get_spec
from ids.data import input_columns, load_dataset
from ids.monitoring import (
    DriftConfig,
    compute_drift,
    log_scale_columns,
    screen_columns,
)
from ids.retrain_decision import decide_retrain

SHIFTS = {
    "ddos+scanning": lambda t: t.isin(["ddos", "scanning"]),
    "no normal": lambda t: t != "normal",
    "only normal": lambda t: t == "normal",
    "xss+injection+password": lambda t: t.isin(["xss", "injection", "password"]),
    "normal+scanning": lambda t: t.isin(["normal", "scanning"]),
}
# name: (numeric method, categorical method, log1p scale); None = Evidently's
# size-based default (normed Wasserstein / Jensen-Shannon for these references).
METHODS = {
    "default, log1p": (None, None, True),
    "default, raw": (None, None, False),
    "ks + chisquare, log1p": ("ks", "chisquare", True),
    "psi, raw": ("psi", "psi", False),
    "jensenshannon, raw": ("jensenshannon", "jensenshannon", False),
}


def split(records: pd.DataFrame, seed: int = 1, rows: int = 50_000):
    reference = records.sample(rows, random_state=seed)
    return reference, records.drop(reference.index)


def window(pool: pd.DataFrame, kind: str, rows: int, seed: int) -> pd.DataFrame:
    source = pool if kind == "stable" else pool[SHIFTS[kind](pool["type"])]
    return source.sample(rows, random_state=seed, replace=rows > len(source))


def shares(reference, current, columns, kinds) -> dict[str, float]:
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    notes = screen_columns(reference[columns], current[columns], kinds)
    compared = [c for c, note in notes.items() if not note]
    scaled = set(log_scale_columns(reference, current, compared))
    out = {}
    for name, (num_method, cat_method, log_scale) in METHODS.items():
        drifted = 0
        for column in compared:
            numeric = kinds[column] == "numerical"
            kind = ColumnType.Numerical if numeric else ColumnType.Categorical
            ref = reference[column].dropna()
            cur = current[column].dropna()
            if log_scale and column in scaled:
                ref, cur = np.log1p(ref), np.log1p(cur)
            test = get_stattest(ref, cur, kind, num_method if numeric else cat_method)
            drifted += bool(test(ref, cur, kind, None).drifted)
        out[name] = drifted / len(compared)
    return out


def calibrate(records, columns, kinds, sizes, reference_rows=50_000) -> None:
    reference, pool = split(records, rows=reference_rows)
    rows = []
    for kind in ["stable", *SHIFTS]:
        for size in sizes:
            for seed in range(5 if kind == "stable" else 2):
                current = window(pool, kind, size, seed)
                for method, share in shares(reference, current, columns, kinds).items():
                    rows.append(
                        dict(window=kind, rows=size, method=method, share=share)
                    )
            print(f"{kind:>24} {size:>7} done", flush=True)
    print(f"reference: {len(reference)} rows")
    table = pd.DataFrame(rows)
    grouped = table.groupby(["window", "rows", "method"], sort=False)["share"]
    cells = (
        grouped.min().map("{:.2f}".format) + "-" + grouped.max().map("{:.2f}".format)
    )
    pivot = cells.unstack("method")
    print(pivot.to_string())
    print("| window | rows | " + " | ".join(pivot.columns) + " |")
    for (kind, size), row in pivot.iterrows():
        print(f"| {kind} | {size} | " + " | ".join(row) + " |")


def time_decisions(records, columns, kinds, out_dir: Path) -> None:
    reference, pool = split(records)
    config = DriftConfig()
    cases = [("stable", config), ("stable", config)]
    cases += [("stable", DriftConfig(max_current_rows=None))]
    cases += [("stable", DriftConfig(summary_table=True))]
    cases += [(kind, config) for kind in ["ddos+scanning", "no normal", "only normal"]]
    print(
        f"{'window':>16} {'config':>22} {'wall s':>7} {'cpu s':>6} {'share':>6}",
        "decision",
    )
    for i, (kind, cfg) in enumerate(cases):
        current = window(pool, kind, 100_000, seed=7)[columns]
        wall, cpu = time.perf_counter(), time.process_time()
        result = compute_drift(
            reference[columns],
            current,
            kinds,
            cfg,
            report_path=out_dir / f"drift_{i}_{kind.replace('+', '_')}.html",
        )
        decision = decide_retrain(result, cfg)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        label = (
            "no sampling"
            if cfg.max_current_rows is None
            else ("summary table" if cfg.summary_table else "default")
        )
        if i == 0:
            label += " (cold)"
        print(
            f"{kind:>16} {label:>22} {wall:7.2f} {cpu:6.2f} {result.drift_share:6.3f}  "
            f"{'RETRAIN' if decision.retrain else 'keep'}: {decision.reason}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--sizes", default="200,500,1000,5000,20000,100000")
    parser.add_argument("--reference-rows", type=int, default=50_000)
    parser.add_argument("--reports", type=Path, default=None, help="HTML folder")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)

    started = time.perf_counter()
    loaded = load_dataset("network")
    spec = get_spec("network")
    columns = input_columns(spec)
    kinds = {
        c: CATEGORICAL if spec.columns.get(c) == CATEGORICAL else "numerical"
        for c in columns
    }
    records = loaded.records[columns + ["type"]]
    print(
        f"loaded {len(records)} network rows in {time.perf_counter() - started:.1f} s"
    )
    if args.calibrate:
        sizes = [int(s) for s in args.sizes.split(",")]
        calibrate(records, columns, kinds, sizes, args.reference_rows)
        return
    with tempfile.TemporaryDirectory() as scratch:
        time_decisions(records, columns, kinds, args.reports or Path(scratch))


if __name__ == "__main__":
    main()
