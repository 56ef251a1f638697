"""Replay of real held-out rows to the running service, with their labels filed.

The rows come from the replay split of the training protocol (10% of the
deduplicated file, never trained or evaluated on). ``stable`` keeps the split's
class mix, ``shift`` keeps only a few attack types. Each sent row is also written
with its true ``label`` and ``type`` into ``<incoming>/<dataset>/``, standing in
for an analyst's labels, so the next retrain learns from it.

    python -m ids.replay --dataset network --scenario shift --rate 500 \\
        --records 2000 --url http://127.0.0.1:3000
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from ids.catalog import CATEGORICAL, CLASSES, TARGET_COLUMNS, get_spec

logger = logging.getLogger(__name__)

SCENARIOS = ("stable", "shift")
# Web attacks only: the calibrated drift share of this mix is 0.36 at every
# window size (benchmarks/results/drift_calibration.md), far over 0.10.
SHIFT_TYPES = ("xss", "injection", "password")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_BATCH = 500


@dataclass
class ReplayReport:
    """What a replay sent and what the service answered."""

    sent: int = 0
    batches: int = 0
    seconds: float = 0.0
    models: dict[str, int] = field(default_factory=dict)
    types: dict[str, int] = field(default_factory=dict)
    incoming: str | None = None


def drop_types(loaded, types: tuple[str, ...]):
    """``loaded`` without the rows of ``types``: a champion that never saw them."""
    from ids.data import LoadedDataset

    _check_types(types)
    keep = ~loaded.records["type"].isin(types).to_numpy()
    formats = None if loaded.formats is None else loaded.formats.loc[keep]
    return LoadedDataset(
        loaded.name,
        loaded.records.loc[keep].reset_index(drop=True),
        loaded.release,
        loaded.rows_read,
        {**loaded.rows_dropped, f"types {list(types)}": int((~keep).sum())},
        loaded.fingerprint,
        loaded.raw_hash[keep],
        None if formats is None else formats.reset_index(drop=True),
    )


def replay_split(loaded, seed: int = 0) -> pd.DataFrame:
    """Typed rows (with targets) of the protocol's replay split of ``loaded``."""
    from ids.training import protocol_frame, protocol_split

    frame, _, _ = protocol_frame(loaded)
    positions = protocol_split(frame, seed).replay
    return frame.iloc[positions].reset_index(drop=True)


def scenario_rows(
    pool: pd.DataFrame,
    scenario: str,
    records: int,
    types: tuple[str, ...] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """``records`` rows of the replay pool for a scenario, in a shuffled order.

    ``stable`` keeps the pool's mix (of ``types`` if given); ``shift`` keeps only
    ``types`` (default :data:`SHIFT_TYPES`). A pool smaller than ``records``
    is sent whole, never repeated.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r} is unknown; expected {SCENARIOS}")
    if records < 1:
        raise ValueError(f"records must be >= 1, got {records}")
    if scenario == "shift" and not types:
        types = SHIFT_TYPES
    if types:
        _check_types(types)
        pool = pool[pool["type"].isin(types)]
    if pool.empty:
        raise ValueError(
            f"the replay split holds no rows of types {list(types or ())}; pick "
            f"types present in it: {sorted(set(pool['type']))}"
        )
    if len(pool) < records:
        logger.warning(
            "%s: only %d replay rows of types %s; sending those, not %d",
            scenario,
            len(pool),
            list(types or ()) or "all",
            records,
        )
    picked = pool.sample(n=min(records, len(pool)), random_state=seed)
    return picked.reset_index(drop=True)


def _check_types(types) -> None:
    unknown = [t for t in types if t not in CLASSES]
    if unknown:
        raise ValueError(f"unknown type(s) {unknown}; expected some of {CLASSES}")


def raw_columns(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Typed rows written back as the file writes them: '-' where not applicable."""
    spec = get_spec(dataset)
    out = {}
    for column, kind in spec.columns.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if kind == CATEGORICAL:
            out[column] = values.astype(object).where(values.notna(), "-")
            continue
        flag = f"absent__{column}"
        absent = values.isna().to_numpy()
        if flag in frame.columns:
            absent |= frame[flag].to_numpy() != 0
        as_object = values.astype(object)
        as_object[absent] = "-"
        out[column] = as_object
    return pd.DataFrame(out, index=frame.index)


def as_records(frame: pd.DataFrame, dataset: str) -> list[dict]:
    """JSON-ready raw records of the dataset's feature columns (no targets)."""
    spec = get_spec(dataset)
    raw = raw_columns(frame, dataset)
    features = [c for c in spec.feature_columns if c in raw.columns]
    rows = raw[features].to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, np.generic):
                row[key] = value.item()
    return rows


def write_incoming(
    frame: pd.DataFrame, dataset: str, folder: str | Path | None = None
) -> Path:
    """The rows with their true label and type as ``replay-<time>.csv``."""
    from ids.settings import incoming_dir

    target = Path(folder) if folder else incoming_dir()
    target = target / dataset
    target.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = target / f"replay-{stamp}.csv"
    labeled = raw_columns(frame, dataset)
    for column in TARGET_COLUMNS:
        labeled[column] = frame[column].to_numpy()
    staging = path.with_name(f".{path.name}.tmp")
    labeled.to_csv(staging, index=False)
    staging.replace(path)
    logger.info("%s: %d labeled replay rows written to %s", dataset, len(frame), path)
    return path


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash, if it points at this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK:
        raise ValueError(
            f"replay sends only to a service on this machine; got {url!r}. Use "
            "http://127.0.0.1:<port> (the port `bentoml serve` listens on)"
        )
    return url.rstrip("/")


def send(
    url: str,
    dataset: str,
    records: list[dict],
    rate: float,
    batch_size: int | None = None,
    timeout_s: float = 60.0,
) -> ReplayReport:
    """POST the records to ``<url>/score`` at about ``rate`` records per second.

    Raises:
        RuntimeError: The service answered an error; the message holds its reply.
    """
    import httpx

    url = check_loopback(url)
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a positive number of records/s, got {rate}")
    size = batch_size or max(1, min(MAX_BATCH, int(rate)))
    report = ReplayReport()
    started = time.monotonic()
    with httpx.Client(timeout=timeout_s) as client:
        for first in range(0, len(records), size):
            batch = records[first : first + size]
            try:
                response = client.post(
                    f"{url}/score", json={"dataset": dataset, "records": batch}
                )
            except httpx.TransportError as exc:
                raise RuntimeError(
                    f"{url}/score did not answer ({exc}); is `bentoml serve` "
                    "running there? (infra/stack.sh status)"
                ) from exc
            if response.status_code != 200:
                raise RuntimeError(
                    f"{url}/score answered {response.status_code} to records "
                    f"{first}-{first + len(batch) - 1}: {response.text[:500]}"
                )
            tag = response.json()["models"].get("multiclass") or "none"
            report.models[tag] = report.models.get(tag, 0) + len(batch)
            report.sent += len(batch)
            report.batches += 1
            # Hold the rate: the next batch leaves when this many records are due.
            due = started + report.sent / rate
            time.sleep(max(0.0, due - time.monotonic()))
    report.seconds = round(time.monotonic() - started, 3)
    return report


def replay(
    dataset: str,
    scenario: str,
    records: int,
    url: str,
    rate: float,
    *,
    types: tuple[str, ...] | None = None,
    seed: int = 0,
    max_rows: int | None = None,
    data_dir: str | None = None,
    incoming_dir: str | None = None,
    loaded=None,
) -> ReplayReport:
    """Pick the scenario's rows, send them, then file them with their labels.

    ``max_rows`` and ``seed`` must match the champion's training run for the
    replay split to be rows it never saw (the nightly default: every row, 0).
    """
    from ids.data import load_dataset

    check_loopback(url)
    if loaded is None:
        loaded = load_dataset(dataset, data_dir, max_rows)
    rows = scenario_rows(replay_split(loaded, seed), scenario, records, types, seed)
    report = send(url, dataset, as_records(rows, dataset), rate)
    report.types = rows["type"].value_counts().to_dict()
    report.incoming = str(write_incoming(rows, dataset, incoming_dir))
    logger.info(
        "%s %s: sent %d records in %.1f s, models %s",
        dataset,
        scenario,
        report.sent,
        report.seconds,
        report.models,
    )
    return report


def _parser() -> argparse.ArgumentParser:
    from ids.catalog import CATALOG

    parser = argparse.ArgumentParser(
        prog="python -m ids.replay",
        description="Send real replay-split rows to the running service and file "
        "them with their labels in the incoming folder.",
    )
    parser.add_argument("--dataset", required=True, choices=sorted(CATALOG))
    parser.add_argument("--scenario", required=True, choices=SCENARIOS)
    parser.add_argument("--rate", type=float, default=200.0, help="records per s")
    parser.add_argument("--records", type=int, default=2000, help="records to send")
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="service")
    parser.add_argument(
        "--types",
        nargs="+",
        choices=CLASSES,
        help=f"types to send (shift default: {' '.join(SHIFT_TYPES)}; stable "
        "default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="split and sample seed")
    parser.add_argument(
        "--max-rows", type=int, help="the champion's training max_rows, if any"
    )
    parser.add_argument("--data-dir", help="folder of Train_Test_datasets/")
    parser.add_argument("--incoming-dir", help="incoming folder (default: home)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints the replay report as JSON."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        report = replay(
            args.dataset,
            args.scenario,
            args.records,
            args.url,
            args.rate,
            types=tuple(args.types) if args.types else None,
            seed=args.seed,
            max_rows=args.max_rows,
            data_dir=args.data_dir,
            incoming_dir=args.incoming_dir,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"replay failed: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    print(json.dumps(report.__dict__, indent=2))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
