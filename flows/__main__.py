"""``python -m flows nightly|retrain|serve``: run the flows on the real data."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

# Where the environment says nothing, runs log the project's loggers to the
# Prefect UI and give a busy machine time to start the temporary server.
PREFECT_DEFAULTS = {
    "PREFECT_LOGGING_EXTRA_LOGGERS": "ids,flows",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def _common(parser: argparse.ArgumentParser) -> None:
    from ids.models import MODELS, OPTIMIZERS

    parser.add_argument("--models", nargs="+", choices=MODELS, help="default: all")
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS)
    parser.add_argument("--epochs", type=int, default=10, help="most Keras epochs")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--max-rows", type=int, help="stratified sample per file")
    parser.add_argument("--no-strict", action="store_true", help="skip grouped split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-gain", type=float, default=0.0)
    parser.add_argument("--data-dir", help="folder of Train_Test_datasets/")
    parser.add_argument("--incoming-dir", help="newly labeled rows per dataset")
    parser.add_argument("--context-root", help="Great Expectations project")
    parser.add_argument("--out", dest="out_dir", help="runs folder")
    parser.add_argument("--build-bento", action="store_true", default=None)
    parser.add_argument("--service-url", help="service to reload after a promotion")


def _parser() -> argparse.ArgumentParser:
    from ids.catalog import CATALOG, TASKS

    parser = argparse.ArgumentParser(prog="python -m flows", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    night = commands.add_parser("nightly", help="every dataset found, both tasks")
    night.add_argument("--datasets", nargs="+", choices=list(CATALOG))
    night.add_argument("--tasks", nargs="+", choices=TASKS)
    night.add_argument("--runner", choices=("thread", "dask"))
    night.add_argument("--dask-address", help="scheduler of an existing cluster")
    night.add_argument("--workers", type=int, help="threads or local Dask workers")
    _common(night)
    once = commands.add_parser("retrain", help="one dataset and task now")
    once.add_argument("--dataset", required=True, choices=list(CATALOG))
    once.add_argument("--task", required=True, choices=TASKS)
    _common(once)
    commands.add_parser("serve", help="serve nightly/scheduled and retrain/on-demand")
    return parser


def _parameters(args: argparse.Namespace) -> dict:
    values = dict(vars(args))
    values.pop("command")
    values["strict"] = not values.pop("no_strict")
    return values


def prepare_environment() -> None:
    """The project home, the tools' homes and quiet defaults, Prefect's home made."""
    from ids.settings import ensure_home, prefect_home

    ensure_home()
    prefect_home().mkdir(parents=True, exist_ok=True)
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    """Run one command; exit status 1 when the flow run failed."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("great_expectations", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    prepare_environment()

    if args.command == "serve":
        from flows.serve import main as serve

        serve()
        return 0
    if args.command == "nightly":
        from flows.nightly import nightly as run
    else:
        from flows.retrain import retrain as run
    state = run(**_parameters(args), return_state=True)
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, BaseException):
        outcome = {"error": f"{type(outcome).__name__}: {outcome}"}
    sys.stdout.write(json.dumps(outcome, indent=2, default=str) + "\n")
    if not state.is_completed():
        sys.stdout.write(f"{state.name}: {state.message}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
