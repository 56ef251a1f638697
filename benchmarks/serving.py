"""Serving benchmark: a real `bentoml serve` of network champions and a load generator.

Trains (or reuses) network champions on real rows, registers and promotes them
into a throw-away home, starts the service on a free loopback port with the
inference log on, then measures from this machine:

- records_per_second: requests of 1,000 real network records (every raw field);
- single_p50_ms / single_p99_ms: one-record requests from 4 concurrent clients;
- forward_us_per_record: the model's forward pass alone (both champions, a
  batch of 1,000), and the whole in-process scoring path per record for
  comparison; forward_ms_single_record is one record the way the service
  scores it (treelite's leaf walk for tree champions), beside scikit-learn's.

Both load phases run ``--rounds`` times on the same server; the headline
figures are the medians, every round is kept with the share of CPU time the
hypervisor took away meanwhile (``steal``: this machine is a shared VM, and
it moves latency more than any change to the service does).

Usage: .venv/bin/python benchmarks/serving.py [--model rf] [--max-rows 50000]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # rf: what the nightly flow promotes for the network set (both tasks).
    parser.add_argument("--model", default="rf", help="candidate trained per task")
    parser.add_argument("--max-rows", type=int, default=50_000)
    parser.add_argument("--runs", nargs="*", help="existing detector folders to reuse")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/serving.json"))
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="ids-bench-serving-"))
    env = _home_env(home)
    os.environ.update(env)
    folders = args.runs or _train(args.model, args.max_rows, home)
    tags = _promote(folders)
    print("champions:", tags)

    records = _network_records(20_000)
    forward = _forward_cost(records[:1000])
    print("in-process:", forward)

    from tests.conftest import bentoml_serve

    workers = {"IDS_SERVE_WORKERS": str(args.workers)} if args.workers else {}
    rounds = []
    tick = time.monotonic()
    with bentoml_serve(home / "serve.log", **workers) as url:
        startup = time.monotonic() - tick
        port = int(url.rsplit(":", 1)[1])
        for number in range(args.rounds):
            batch, batch_steal = _with_steal(
                lambda: _throughput(port, records, args.seconds, args.clients)
            )
            single, single_steal = _with_steal(
                lambda: _single(port, records, args.seconds, args.clients)
            )
            batch["cpu_steal_share"], single["cpu_steal_share"] = (
                batch_steal,
                single_steal,
            )
            rounds.append({"batch": batch, "single": single})
            print(f"round {number + 1}: batch {batch}\n         single {single}")
        time.sleep(1.0)
        logged = _logged(home)

    scored = sum(r[phase]["records_ok_with_warmup"] for r in rounds for phase in r)
    result = {
        "records_per_second": _median(rounds, "batch", "records_per_second"),
        "single_p50_ms": _median(rounds, "single", "p50_ms"),
        "single_p99_ms": _median(rounds, "single", "p99_ms"),
        "forward_us_per_record": forward["forward_us_per_record"],
        "forward_ms_single_record": forward["forward_ms_single_record"],
        "forward_ms_single_record_sklearn": forward["forward_ms_single_record_sklearn"],
        "in_process_us_per_record_batch_1000": forward["pipeline_us_per_record"],
        "in_process_ms_single_record": forward["pipeline_ms_single"],
        "targets": {"records_per_second": 20_000, "single_p99_ms": 15},
        "details": {
            "rounds": rounds,
            "headline": f"median of {args.rounds} rounds of {args.seconds:g} s each",
            "records_scored": scored,
            "records_logged": logged,
            "server_startup_s": round(startup, 1),
            "champions": tags,
            "model": args.model,
            "training_max_rows": args.max_rows,
            "workers": args.workers or "service default (one per core, at most 4)",
            "clients": args.clients,
            "load_generator": "one process per client, http.client keep-alive",
            "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "inference_log": "on",
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "details"}, indent=2))
    return 0


def _home_env(home: Path) -> dict[str, str]:
    return {
        "IDS_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "KERAS_HOME": str(home / "keras"),
        "BENTOML_DO_NOT_TRACK": "True",
        "DO_NOT_TRACK": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def _train(model: str, max_rows: int, home: Path) -> list[str]:
    from ids.training import TrainingConfig, train_dataset

    folders = []
    for task in ("binary", "multiclass"):
        config = TrainingConfig(models=(model,), max_rows=max_rows, strict=False)
        run = train_dataset("network", task, config, out_dir=home / "runs")
        folders.extend(str(p) for p in run.detectors.values())
    return folders


def _promote(folders: list[str]) -> dict[str, str]:
    from ids import registry
    from ids.detector import read_metadata

    tags = {}
    for folder in folders:
        meta = read_metadata(folder)
        tag = registry.register_detector(folder)
        registry.promote_champion(meta["dataset"], meta["task"], tag, "benchmark", {})
        tags[meta["task"]] = tag
    return tags


def _network_records(rows: int) -> list[dict]:
    from ids.catalog import get_spec, resolve_data_dir
    from ids.data import read_raw

    spec = get_spec("network")
    raw, _ = read_raw(resolve_data_dir() / spec.relpath, spec)
    raw = raw.drop(columns=["label", "type"]).sample(rows, random_state=0)
    return raw.to_dict("records")


def _forward_cost(records: list[dict]) -> dict:
    from ids.features import transform_columns
    from ids.models import model_proba
    from ids.serving import Scorer, typed_columns

    scorer = Scorer(log=False, model_jobs=1)  # as the service loads them
    champions = list(scorer.champions.champions.values())
    spec_typed = typed_columns(records, _spec("network"))
    matrices = [
        transform_columns(c.detector.preprocessor, spec_typed) for c in champions
    ]

    def best_of(fn, repeat=20):
        fn()
        times = []
        for _ in range(repeat):
            tick = time.perf_counter()
            fn()
            times.append(time.perf_counter() - tick)
        return min(times)

    forward = best_of(
        lambda: [
            model_proba(c.detector.model, X)
            for c, X in zip(champions, matrices, strict=True)
        ]
    )
    # One record goes the way the service sends it: treelite's leaf walk for
    # tree champions (ids.forest_inference), scikit-learn for other models.
    single_forward = best_of(
        lambda: [
            c.leaves.proba(X[:1]) if c.leaves else model_proba(c.detector.model, X[:1])
            for c, X in zip(champions, matrices, strict=True)
        ],
        repeat=200,
    )
    single_sklearn = best_of(
        lambda: [
            model_proba(c.detector.model, X[:1])
            for c, X in zip(champions, matrices, strict=True)
        ],
        repeat=200,
    )
    pipeline = best_of(lambda: scorer.score("network", records))
    single = best_of(lambda: scorer.score("network", records[:1]), repeat=200)
    return {
        "forward_us_per_record": round(forward / len(records) * 1e6, 3),
        "forward_ms_single_record": round(single_forward * 1e3, 3),
        "forward_ms_single_record_sklearn": round(single_sklearn * 1e3, 3),
        "pipeline_us_per_record": round(pipeline / len(records) * 1e6, 2),
        "pipeline_ms_single": round(single * 1e3, 3),
    }


def _spec(name: str):
    from ids.catalog import get_spec

    return get_spec(name)


def _run_clients(
    port: int, bodies: list[bytes], clients: int, seconds: float, warmup: float = 0.0
) -> list[tuple[int, float, bool]]:
    """(status, milliseconds, after the warm-up) of every request sent.

    Each client is its own process with one keep-alive connection, as separate
    producers would be, and uses the standard library's ``http.client``: a
    thread-per-client generator in one interpreter measured its own GIL waits
    as service latency, and httpx costs several times the CPU per request,
    taken from the two cores the server also runs on.
    """
    context = multiprocessing.get_context("fork")
    start = time.time() + 0.5
    shares = [bodies[i::clients] for i in range(clients)]
    with context.Pool(clients) as pool:
        parts = pool.starmap(
            _client, [(port, share, start, warmup, seconds) for share in shares]
        )
    return [sample for part in parts for sample in part]


def _client(
    port: int, bodies: list[bytes], start: float, warmup: float, seconds: float
) -> list[tuple[int, float]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json"}
    samples = []
    time.sleep(max(0.0, start - time.time()))
    measure_from = time.monotonic() + warmup
    stop = measure_from + seconds
    for body in itertools.cycle(bodies):
        now = time.monotonic()
        if now >= stop:
            break
        tick = time.perf_counter()
        connection.request("POST", "/score", body, headers)
        response = connection.getresponse()
        response.read()
        elapsed = (time.perf_counter() - tick) * 1e3
        samples.append((response.status, elapsed, now >= measure_from))
    connection.close()
    return samples


def _throughput(port: int, records: list[dict], seconds: float, clients: int) -> dict:
    bodies = [
        json.dumps({"dataset": "network", "records": records[i : i + 1000]}).encode()
        for i in range(0, len(records), 1000)
    ]
    sent = _run_clients(port, bodies, clients, seconds, warmup=1.0)
    samples = [(status, ms) for status, ms, measured in sent if measured]
    ok = sum(status == 200 for status, _ in samples)
    return {
        "requests": len(samples),
        "failed": len(samples) - ok,
        "records_per_second": round(ok * 1000 / seconds, 1),
        "seconds": seconds,
        "p50_ms": round(statistics.median(ms for _, ms in samples), 1),
        "records_ok_with_warmup": 1000 * sum(status == 200 for status, *_ in sent),
    }


def _single(port: int, records: list[dict], seconds: float, clients: int) -> dict:
    bodies = [
        json.dumps({"dataset": "network", "records": [r]}).encode()
        for r in records[:2000]
    ]
    sent = _run_clients(port, bodies, clients, seconds, warmup=2.0)
    samples = [(status, ms) for status, ms, measured in sent if measured]
    latencies = sorted(ms for status, ms in samples if status == 200)
    return {
        "requests": len(samples),
        "failed": sum(status != 200 for status, _ in samples),
        "records_ok_with_warmup": sum(status == 200 for status, *_ in sent),
        "requests_per_second": round(len(samples) / seconds, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))], 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
    }


def _with_steal(measure) -> tuple[dict, float]:
    """``measure()``'s result and the share of CPU time stolen while it ran."""
    before = _cpu_times()
    result = measure()
    after = _cpu_times()
    total = sum(after) - sum(before)
    steal = after[7] - before[7] if len(after) > 7 else 0
    return result, round(steal / total, 3) if total else 0.0


def _cpu_times() -> list[int]:
    with open("/proc/stat") as handle:
        return [int(v) for v in handle.readline().split()[1:]]


def _median(rounds: list[dict], phase: str, key: str) -> float:
    return round(statistics.median(r[phase][key] for r in rounds), 2)


def _logged(home: Path) -> int:
    from ids.inference_log import count_logged

    return count_logged("network", root=home / "inference_log")


if __name__ == "__main__":
    raise SystemExit(main())
