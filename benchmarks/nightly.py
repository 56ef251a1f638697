"""Benchmark: the nightly flow on all real data; writes benchmarks/results/nightly.json.

The configuration is the training benchmark's (every candidate, both
optimizers, 10 epochs, batch 512, strict split), so that the difference in wall
time is the orchestration's overhead (validation, Prefect, registry). Smoke
runs (``--max-rows 2000 --models dt``) write ``nightly-smoke.json`` instead.

    .venv/bin/python benchmarks/nightly.py                 # ~15+ min on 2 cores
    .venv/bin/python benchmarks/nightly.py --max-rows 2000 --models dt
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "benchmarks" / "results"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-rows", type=int, help="smoke: rows per file")
    parser.add_argument("--models", nargs="+", help="smoke: candidate models")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--datasets", nargs="+", help="default: every file found")
    parser.add_argument("--runner", choices=("thread", "dask"))
    parser.add_argument("--workers", type=int)
    parser.add_argument("--home", help="project home (default: a fresh temp folder)")
    parser.add_argument("--out", help="result file (default under benchmarks/results)")
    parser.add_argument(
        "--compare", help="a result JSON with wall_seconds (the training benchmark)"
    )
    return parser.parse_args(argv)


def _peak_rss_mb() -> dict[str, float]:
    # ru_maxrss is in KiB on Linux; children covers Dask or bentoml subprocesses.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "peak_rss_mb": round(own + children, 1),
        "peak_rss_self_mb": round(own, 1),
        "peak_rss_children_mb": round(children, 1),
    }


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    smoke = args.max_rows is not None or args.models is not None
    home = Path(args.home or tempfile.mkdtemp(prefix="ids-nightly-bench-"))
    os.environ["IDS_HOME"] = str(home)
    for tool in ("BENTOML_HOME", "PREFECT_HOME", "KERAS_HOME"):
        os.environ.setdefault(tool, str(home / tool.split("_")[0].lower()))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("great_expectations").setLevel(logging.WARNING)

    from flows.__main__ import prepare_environment

    prepare_environment()
    from flows.nightly import nightly

    parameters = dict(
        datasets=args.datasets,
        models=args.models,
        epochs=args.epochs,
        max_rows=args.max_rows,
        runner=args.runner,
        workers=args.workers,
    )
    started = time.perf_counter()
    state = nightly(**parameters, return_state=True)
    wall = time.perf_counter() - started
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException):
        summary = {}

    result = {
        "benchmark": "nightly flow on all real data",
        "configuration": "smoke" if smoke else "training benchmark's",
        "parameters": parameters,
        "state": state.name,
        "message": state.message,
        "wall_seconds": round(wall, 1),
        **_peak_rss_mb(),
        "datasets": {
            name: {
                "seconds": entry.get("seconds"),
                "outcome": entry.get("outcome"),
                "promoted": entry.get("promoted", []),
                "reason": entry.get("reason"),
            }
            for name, entry in summary.items()
        },
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "commit": _commit(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "home": str(home),
    }
    if args.compare:
        reference = json.loads(Path(args.compare).read_text())["wall_seconds"]
        result["training_wall_seconds"] = reference
        result["overhead_share"] = round(wall / reference - 1, 4)
    name = "nightly-smoke.json" if smoke else "nightly.json"
    out = Path(args.out) if args.out else RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{state.name} in {wall:.1f} s, peak RSS {result['peak_rss_mb']} MB -> {out}")
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
