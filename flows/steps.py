"""The tasks of a retraining branch: validate, prepare, train, judge, promote."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from flows import artifacts

logger = logging.getLogger(__name__)

# Great Expectations keeps per-context state on disk and in memory; threads of
# one process validate one file at a time.
_GX_LOCK = threading.Lock()


class ValidationFailed(RuntimeError):
    """A data file failed its suite; its dataset's branch stops, champion kept."""


@dataclass
class BranchOptions:
    """Everything a branch needs besides the dataset and tasks; JSON-able."""

    models: tuple[str, ...] | None = None
    optimizers: tuple[str, ...] | None = None
    epochs: int = 10
    batch_size: int = 512
    max_rows: int | None = None
    strict: bool = True
    seed: int = 0
    metric: str = "f1_macro"
    min_gain: float = 0.0
    data_dir: str | None = None
    incoming_dir: str | None = None
    context_root: str | None = None
    out_dir: str | None = None

    def training_config(self):
        """The ``TrainingConfig`` of these options."""
        from ids.models import MODELS, OPTIMIZERS
        from ids.training import TrainingConfig

        return TrainingConfig(
            models=tuple(self.models or MODELS),
            optimizers=tuple(self.optimizers or OPTIMIZERS),
            epochs=self.epochs,
            batch_size=self.batch_size,
            max_rows=self.max_rows,
            seed=self.seed,
            strict=self.strict,
        )

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Prepared:
    """A dataset read once for all its tasks, with the shared test split."""

    loaded: object
    held_out: object
    incoming_rows: int


@task(name="build-data-docs", cache_policy=NO_CACHE)
def build_docs(context_root: str | None) -> str | None:
    """Build the Data Docs site and link it; a failure here stops nothing."""
    from ids.validation import build_data_docs

    try:
        with _GX_LOCK:
            index = build_data_docs(context_root)
    except Exception as exc:  # docs are a convenience: log, note, go on
        logger.warning("Data Docs could not be built: %s", exc)
        artifacts.publish_data_docs(None, str(exc))
        return None
    artifacts.publish_data_docs(index)
    return str(index)


@task(name="validate", cache_policy=NO_CACHE)
def validate_dataset(
    dataset: str, data_dir: str | None, context_root: str | None
) -> dict:
    """Validate every file behind ``dataset``; raise listing what failed."""
    from ids.catalog import get_spec
    from ids.validation import validate_file

    names = get_spec(dataset).members or (dataset,)
    with _GX_LOCK:
        reports = [
            validate_file(name, data_dir=data_dir, context_root=context_root)
            for name in names
        ]
    artifacts.publish_validation(dataset, reports)

    failed = [(r.dataset, item) for r in reports for item in r.failed]
    if failed:
        listed = "; ".join(
            f"{name}: {item['expectation']}"
            + (f"({item['column']})" if item["column"] else "")
            + f" observed {item['observed']}"
            for name, item in failed[:10]
        )
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        raise ValidationFailed(
            f"{dataset}: validation failed, champion kept: {len(failed)} failed "
            f"expectation(s): {listed}{more}"
        )
    return {r.dataset: {"rows": r.rows, "release": r.release} for r in reports}


@task(name="prepare", cache_policy=NO_CACHE)
def prepare_dataset(dataset: str, options: BranchOptions) -> Prepared:
    """The base file (bounded by ``max_rows``) plus all newly labeled rows."""
    from ids.data import load_dataset
    from ids.ingest import load_incoming
    from ids.promotion import protocol_test_split
    from ids.training import with_extra

    loaded = load_dataset(dataset, options.data_dir, options.max_rows)
    incoming = load_incoming(dataset, options.incoming_dir)
    if len(incoming):
        loaded = with_extra(loaded, incoming)
    held_out = protocol_test_split(loaded, options.seed)
    logger.info(
        "%s: %d rows (%d newly labeled), test split %d rows",
        dataset,
        len(loaded.records),
        len(incoming),
        len(held_out),
    )
    return Prepared(loaded, held_out, len(incoming))


@task(name="train", cache_policy=NO_CACHE)
def train_candidates(
    dataset: str, task_name: str, prepared: Prepared, options: BranchOptions
):
    """Every candidate of the options on one task; the metrics table artifact."""
    from ids.training import train_dataset

    result = train_dataset(
        dataset,
        task_name,
        options.training_config(),
        out_dir=options.out_dir,
        loaded=prepared.loaded,
    )
    artifacts.publish_metrics(dataset, task_name, result.rows, result.best)
    return result


@task(name="judge", cache_policy=NO_CACHE)
def judge_challenger(result, prepared: Prepared, options: BranchOptions) -> dict:
    """Score the winner and the serving champion on the winner's test split."""
    from ids import registry
    from ids.promotion import decide_promotion, score_champion_on, score_detector_on

    if result.best is None:
        raise RuntimeError(
            f"{result.dataset} {result.task}: no candidate was trained; pass at "
            "least one model"
        )
    records = prepared.held_out.records
    y_test = prepared.held_out.targets[result.task]
    challenger = score_detector_on(result.detectors[result.best], records, y_test)
    row = next(r for r in result.rows if r["tag"] == result.best)
    png = result.folder / row["confusion_png"] if row.get("confusion_png") else None
    artifacts.publish_confusion(
        result.dataset, result.task, result.best, challenger, png
    )

    current = registry.champion(result.dataset, result.task)
    champion = score_champion_on(current["path"] if current else None, records, y_test)
    decision = decide_promotion(challenger, champion, options.metric, options.min_gain)
    logger.info("%s %s: %s", result.dataset, result.task, decision.reason)
    return {
        "challenger": challenger,
        "champion_before": current,
        "decision": asdict(decision),
    }


@task(name="register-and-promote", cache_policy=NO_CACHE)
def register_and_promote(result, judgement: dict) -> dict:
    """Register the winner; make it the champion only if the decision says so."""
    from ids import registry
    from ids.promotion import summary_scores

    decision = judgement["decision"]
    row = next(r for r in result.rows if r["tag"] == result.best)
    notes = (
        f"Chosen by validation macro-F1 among {len(result.rows)} candidate(s) in "
        f"{result.folder.name}. Grouped (strict) test macro-F1: "
        f"{artifacts.cell(row.get('f1_macro_strict'))}; always-majority macro-F1: "
        f"{artifacts.cell(row.get('majority_f1_macro'))}."
    )
    tag = registry.register_detector(result.detectors[result.best], card_notes=notes)
    before = judgement["champion_before"]
    if decision["promote"]:
        scores = summary_scores(judgement["challenger"])
        registry.promote_champion(
            result.dataset, result.task, tag, decision["reason"], scores
        )
    now = registry.champion(result.dataset, result.task)
    outcome = {
        "registered": tag,
        "promoted": bool(decision["promote"]),
        "champion": now["tag"] if now else None,
        "decision": decision,
        "run_folder": str(result.folder),
    }
    artifacts.publish_decision(result.dataset, result.task, outcome, before)
    return outcome
