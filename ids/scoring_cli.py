"""Offline scoring: a CSV of raw records scored by the champions, like the service."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import pandas as pd

from ids.scoring_input import ScoringError, max_records
from ids.serving import Scorer

logger = logging.getLogger(__name__)

SUFFIX = ".predictions.csv"


def predictions_path(csv_path: str | os.PathLike) -> Path:
    """Where predictions of ``csv_path`` go: ``<name>.predictions.csv`` beside it."""
    path = Path(csv_path)
    return path.with_name(f"{path.stem}{SUFFIX}")


def score_csv(
    dataset: str,
    csv_path: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    log: bool = False,
    scorer: Scorer | None = None,
) -> Path:
    """Score every row of a CSV of raw records; returns the predictions file.

    The file is read as the ToN-IoT files are (all text, BOM dropped); extra
    columns such as ``label`` and ``type`` are ignored. Rows go through the
    service's code in chunks of the request limit.

    Args:
        dataset: Catalog name whose champions score the rows.
        csv_path: The CSV file.
        out_path: Where to write; defaults to :func:`predictions_path`.
        log: Also write the scored rows to the inference log.
        scorer: A loaded scorer to reuse; by default the champions are loaded.

    Raises:
        ScoringError: A row cannot be scored (the message names the field and
            the row numbers within the file) or the dataset has no champion.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"no CSV file at {str(csv_path)!r}; pass a file")
    frame = pd.read_csv(
        csv_path, dtype=str, keep_default_na=False, encoding="utf-8-sig"
    )
    frame.columns = [c.strip("\r") for c in frame.columns]
    if frame.empty:
        raise ScoringError(f"{csv_path.name} holds no rows to score")
    owned = scorer is None
    scorer = scorer or Scorer(log=log)

    chunk = max_records()
    parts = []
    for start in range(0, len(frame), chunk):
        records = frame.iloc[start : start + chunk].to_dict("records")
        try:
            result = scorer.score(dataset, records)
        except ScoringError as exc:
            raise ScoringError(
                f"{csv_path.name}, rows {start}-{start + len(records) - 1} (0-based, "
                f"after the header): {exc}",
                exc.status,
            ) from exc
        parts.append(_prediction_frame(result, start))
    if owned:
        scorer.stop()
    out = Path(out_path) if out_path else predictions_path(csv_path)
    predictions = pd.concat(parts, ignore_index=True)
    predictions.to_csv(out, index=False)

    attacks = int(predictions["is_attack"].fillna(False).astype(bool).sum())
    logger.info(
        "scored %d %s rows of %s: %d attack(s); predictions in %s",
        len(predictions),
        dataset,
        csv_path,
        attacks,
        out,
    )
    return out


def _prediction_frame(result: dict, start: int) -> pd.DataFrame:
    rows = []
    for offset, item in enumerate(result["predictions"]):
        row = {
            "row": start + offset,
            "is_attack": item["is_attack"],
            "attack_probability": item["attack_probability"],
            "attack_type": item["attack_type"],
            "disagree": item["disagree"],
        }
        for name, value in (item["probabilities"] or {}).items():
            row[f"p_{name}"] = value
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["binary_model"] = result["models"]["binary"]
    frame["multiclass_model"] = result["models"]["multiclass"]
    return frame


def main(argv: list[str] | None = None) -> int:
    """``score <dataset> <csv> [--out PATH] [--log]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="ids score", description="Score a CSV of raw records with the champions."
    )
    parser.add_argument("dataset", help="catalog name, e.g. network or fridge")
    parser.add_argument("csv", help="CSV file of raw records")
    parser.add_argument("--out", help=f"output file (default <name>{SUFFIX})")
    parser.add_argument(
        "--log", action="store_true", help="also write to the inference log"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        out = score_csv(args.dataset, args.csv, args.out, log=args.log)
    except (ScoringError, FileNotFoundError) as exc:
        print(f"error: {exc}")  # noqa: T201 (CLI entry point)
        return 2
    print(out)  # noqa: T201 (CLI entry point)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
