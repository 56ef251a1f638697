"""The ``ids`` command line: datasets, train, evaluate, report, champions, score."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ids.catalog import CATALOG, TASKS
from ids.models import MODELS, OPTIMIZERS

logger = logging.getLogger("ids")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def _cmd_datasets(args) -> int:
    from ids.catalog import dataset_path, get_spec, resolve_data_dir

    root = resolve_data_dir(args.data_dir)
    print(f"data folder: {root}")
    for name, spec in CATALOG.items():
        if spec.members:
            paths = [dataset_path(get_spec(m), root) for m in spec.members]
            found = all(p.is_file() for p in paths)
            where = f"{len(paths)} device files"
        else:
            path = dataset_path(spec, root)
            found, where = path.is_file(), str(path)
        print(
            f"{'found  ' if found else 'missing'} {name:<20} {spec.layer:<12} {where}"
        )
    return 0


def _datasets_of(value: str, data_dir) -> list[str]:
    if value != "all":
        return [value]
    from ids.catalog import find_datasets

    return list(find_datasets(data_dir))


def _cmd_train(args) -> int:
    from ids.settings import ensure_home
    from ids.training import TrainingConfig, train_dataset

    ensure_home()
    config = TrainingConfig(
        models=tuple(args.model or MODELS),
        optimizers=tuple(args.optimizer or OPTIMIZERS),
        epochs=args.epochs,
        batch_size=args.batch_size,
        max_rows=args.max_rows,
        seed=args.seed,
        strict=not args.no_strict,
    )
    tasks = TASKS if args.task == "both" else (args.task,)
    for name in _datasets_of(args.dataset, args.data_dir):
        for task in tasks:
            result = train_dataset(
                name,
                task,
                config,
                data_dir=args.data_dir,
                out_dir=args.out,
                progress=print,
            )
            print(f"{name} {task}: best {result.best}; results in {result.folder}")
            for row in result.rows:
                print(
                    f"  {row['tag']:<40} acc {row['accuracy']:.4f}  "
                    f"macro-F1 {row['f1_macro']:.4f}  "
                    f"strict {_fmt(row['f1_macro_strict'])}"
                    f"  ceiling-acc {_fmt(row['ceiling_accuracy'])}"
                )
    return 0


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _cmd_evaluate(args) -> int:
    import numpy as np

    from ids.catalog import get_spec
    from ids.data import input_columns, load_dataset
    from ids.detector import Detector
    from ids.evaluation import score_predictions
    from ids.training import protocol_frame, protocol_split, task_target

    detector = Detector.load(args.detector)
    max_rows = (
        detector.config.get("max_rows") if args.max_rows is None else args.max_rows
    )
    seed = detector.config.get("seed", 0)
    loaded = load_dataset(detector.dataset, args.data_dir, max_rows)
    frame, _, _ = protocol_frame(loaded)
    split = protocol_split(frame, seed)
    rows = getattr(split, args.split)
    typed = frame.iloc[rows][input_columns(get_spec(detector.dataset))]
    proba = detector.predict_proba_typed(typed[detector.input_columns])
    pred = np.asarray(detector.classes, dtype=object)[np.argmax(proba, axis=1)]
    scores = score_predictions(
        task_target(frame.iloc[rows], detector.task), pred, detector.classes
    )
    scores.pop("confusion", None)
    print(
        json.dumps({"detector": detector.tag, "split": args.split, **scores}, indent=2)
    )
    return 0


def _cmd_report(args) -> int:
    from ids.evaluation import write_results

    rows = []
    for run in args.run:
        results = Path(run) / "results.json"
        if not results.is_file():
            raise FileNotFoundError(f"{results} not found; pass a training run folder")
        payload = json.loads(results.read_text())
        rows.extend(payload["rows"] if isinstance(payload, dict) else payload)
    md_path, json_path = write_results(rows, Path(args.out), args.name)
    print(f"report written to {md_path} and {json_path}")
    return 0


def _cmd_champions(args) -> int:
    from ids.registry import read_champions

    champions = read_champions()
    if not champions:
        print("no champions yet: run the nightly flow or `ids train` and promote")
    for key, entry in sorted(champions.items()):
        metrics = entry.get("metrics") or {}
        f1 = metrics.get("f1_macro")
        reason = entry.get("reason", "")
        print(f"{key:<32} {entry['tag']:<60} macro-F1 {_fmt(f1)}  {reason}")
    return 0


def _cmd_rollback(args) -> int:
    from ids.registry import rollback_champion

    entry = rollback_champion(args.dataset, args.task)
    print(f"{args.dataset}/{args.task}: champion is now {entry['tag']}")
    return 0


def _cmd_score(args) -> int:
    from ids.scoring_cli import score_csv

    out = score_csv(args.dataset, Path(args.csv), Path(args.out) if args.out else None)
    print(f"predictions written to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ids", description="Intrusion detection for IoT networks (ToN-IoT)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    data_help = "ToN-IoT folder holding Train_Test_datasets/ (default $IDS_DATA_DIR)"

    p = sub.add_parser("datasets", help="list the catalog's datasets and their files")
    p.add_argument("--data-dir", help=data_help)
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("train", help="train and evaluate candidates on a dataset")
    p.add_argument("--dataset", required=True, help=f"'all' or one of {list(CATALOG)}")
    p.add_argument("--task", default="both", choices=[*TASKS, "both"])
    p.add_argument(
        "--model",
        action="append",
        choices=MODELS,
        help="candidate model (repeat; default all)",
    )
    p.add_argument(
        "--optimizer",
        action="append",
        choices=OPTIMIZERS,
        help="optimizer of the Keras models (repeat; default both)",
    )
    p.add_argument("--epochs", type=int, default=10, help="most epochs (Keras)")
    p.add_argument("--batch-size", type=int, default=512, help="Keras batch size")
    p.add_argument("--max-rows", type=int, help="stratified sample of at most N rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-strict",
        action="store_true",
        help="skip the strict (grouped-by-input) figure",
    )
    p.add_argument("--data-dir", help=data_help)
    p.add_argument("--out", help="runs folder (default <home>/runs)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="score a saved detector on its protocol split")
    p.add_argument("--detector", required=True, help="a saved detector folder")
    p.add_argument("--split", default="test", choices=["validation", "test"])
    p.add_argument("--max-rows", type=int, help="default: the detector's own")
    p.add_argument("--data-dir", help=data_help)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("report", help="merge training runs into one results table")
    p.add_argument("--run", action="append", required=True, help="run folder (repeat)")
    p.add_argument("--out", default=".", help="folder of the report")
    p.add_argument("--name", default="results", help="file name without suffix")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("champions", help="list the champion per dataset and task")
    p.set_defaults(func=_cmd_champions)

    p = sub.add_parser("rollback", help="put a dataset's previous champion back")
    p.add_argument("--dataset", required=True, choices=list(CATALOG))
    p.add_argument("--task", required=True, choices=TASKS)
    p.set_defaults(func=_cmd_rollback)

    p = sub.add_parser("score", help="score a CSV of raw records with the champions")
    p.add_argument("--dataset", required=True, choices=list(CATALOG))
    p.add_argument("--csv", required=True, help="raw records as in the ToN-IoT files")
    p.add_argument("--out", help="output CSV (default beside the input)")
    p.set_defaults(func=_cmd_score)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
