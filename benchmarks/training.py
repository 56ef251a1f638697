"""Training benchmark: every real dataset x both tasks x every candidate, full files.

Writes ``benchmarks/results/training.json`` (one row per dataset/task/model/
optimizer, plus wall_seconds and peak_rss_mb) and ``training.md`` beside it.

    .venv/bin/python benchmarks/training.py            # the committed run
    .venv/bin/python benchmarks/training.py --datasets fridge --tasks binary
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ids.catalog import TASKS, TELEMETRY_DEVICES  # noqa: E402
from ids.data import load_dataset  # noqa: E402
from ids.evaluation import RESULT_COLUMNS, write_results  # noqa: E402
from ids.models import MODELS, OPTIMIZERS  # noqa: E402
from ids.training import STRICT_MODELS, TrainingConfig, train_dataset  # noqa: E402

DATASETS = (*TELEMETRY_DEVICES, "telemetry_combined", "network")
# The results table's columns plus what the benchmark also wants to see.
KEYS = (*RESULT_COLUMNS, "ceiling_f1_macro", "rows_fitted", "epochs_run", "batch_size")


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--no-strict", action="store_true")
    parser.add_argument(
        "--strict-models",
        nargs="+",
        default=list(STRICT_MODELS),
        help="candidates that also get the strict (grouped) figure",
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks/results"))
    parser.add_argument("--name", default="training")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    config = TrainingConfig(
        models=tuple(args.models),
        optimizers=tuple(args.optimizers),
        epochs=args.epochs,
        max_rows=args.max_rows,
        strict=not args.no_strict,
        strict_models=tuple(args.strict_models),
    )
    started = time.perf_counter()
    rows, per_dataset = [], {}
    with tempfile.TemporaryDirectory(prefix="ids-bench-") as runs:
        for name in args.datasets:
            tick = time.perf_counter()
            loaded = load_dataset(name, max_rows=args.max_rows)
            for task in args.tasks:
                result = train_dataset(name, task, config, out_dir=runs, loaded=loaded)
                rows.extend({k: row.get(k) for k in KEYS} for row in result.rows)
                best = max(result.rows, key=lambda r: r["f1_macro"])
                print(
                    f"{name:<20} {task:<10} best test macro-F1 {best['f1_macro']:.4f} "
                    f"({best['tag']}), ceiling {best['ceiling_f1_macro']:.4f}, "
                    f"accuracy {best['accuracy']:.4f} "
                    f"vs paper {best['paper_accuracy']}",
                    flush=True,
                )
            per_dataset[name] = round(time.perf_counter() - tick, 1)
    wall = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    md_path, _ = write_results(rows, out, args.name)
    payload = {
        "wall_seconds": round(wall, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "per_dataset_seconds": per_dataset,
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "rows": rows,
    }
    (out / f"{args.name}.json").write_text(json.dumps(payload, indent=2))
    print(f"wall {wall:.0f} s, peak RSS {payload['peak_rss_mb']:.0f} MB; {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
