"""What a run shows in the Prefect UI: validation, metrics, confusion, decision."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

METRIC_COLUMNS = (
    "tag",
    "model",
    "optimizer",
    "val_f1_macro",
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "f1_weighted",
    "f1_macro_strict",
    "majority_f1_macro",
    "ceiling_f1_macro",
    "paper_accuracy",
    "train_seconds",
    "rows_train",
    "rows_test",
)
# PNGs above this size are linked by path only, to keep artifacts small.
_EMBED_LIMIT_BYTES = 400_000


def artifact_key(*parts: str) -> str:
    """A key Prefect accepts (lowercase letters, digits, dashes) from ``parts``."""
    text = "-".join(parts).lower()
    return re.sub(r"[^a-z0-9-]+", "-", text).strip("-")


def cell(value) -> str:
    """One table cell: numbers to 4 places, missing and NaN as ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def publish_validation(dataset: str, reports: list) -> None:
    """The validation summary of each file of a dataset, failed expectations listed."""
    body = "\n".join(report.to_markdown() for report in reports)
    verdict = "passed" if all(r.success for r in reports) else "FAILED"
    create_markdown_artifact(
        markdown=f"## Validation of {dataset}: {verdict}\n\n{body}",
        key=artifact_key("validation", dataset),
        description=f"Great Expectations validation of {dataset}: {verdict}",
    )


def publish_data_docs(index: Path | None, reason: str = "") -> None:
    """A link to the Data Docs site, or a note why none was built."""
    if index is None:
        create_markdown_artifact(
            markdown=f"Data Docs were not built: {reason}",
            key="data-docs",
            description="Great Expectations Data Docs",
        )
        return
    create_link_artifact(
        link=Path(index).resolve().as_uri(),
        link_text=f"Data Docs ({index})",
        key="data-docs",
        description="Great Expectations Data Docs (suites of every dataset)",
    )


def publish_metrics(dataset: str, task: str, rows: list[dict], best: str) -> None:
    """One table row per candidate; NaN and missing scores show as n/a."""
    table = [{c: cell(row.get(c)) for c in METRIC_COLUMNS} for row in rows]
    create_table_artifact(
        table=table,
        key=artifact_key("metrics", dataset, task),
        description=f"{dataset} {task}: candidates; winner by validation "
        f"macro-F1 is {best}",
    )


def publish_confusion(
    dataset: str, task: str, tag: str, scores: dict, png: Path | None
) -> None:
    """The winner's confusion matrix on the test split: counts, and the figure."""
    classes = scores["classes"]
    matrix = scores["confusion"]
    lines = [
        f"## Confusion matrix of {tag} ({dataset} {task}, test split, "
        f"{scores['rows']:,} rows)",
        "",
        "rows: true class, columns: predicted class",
        "",
        "| true \\ predicted | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for name, counts in zip(classes, matrix, strict=True):
        lines.append(f"| **{name}** | " + " | ".join(f"{n:,}" for n in counts) + " |")
    if png is not None and png.is_file():
        lines += ["", f"Figure: `{png}`"]
        if png.stat().st_size <= _EMBED_LIMIT_BYTES:
            encoded = base64.b64encode(png.read_bytes()).decode("ascii")
            lines += [
                "",
                f"![confusion matrix of {tag}](data:image/png;base64,{encoded})",
            ]
    create_markdown_artifact(
        markdown="\n".join(lines) + "\n",
        key=artifact_key("confusion", dataset, task),
        description=f"confusion matrix of the {dataset} {task} winner {tag}",
    )


def publish_decision(
    dataset: str, task: str, outcome: dict, champion_before: dict | None
) -> None:
    """The promotion decision, its reason and the scores it rests on."""
    decision = outcome["decision"]
    verdict = "PROMOTED" if decision["promote"] else "not promoted"
    before = champion_before["tag"] if champion_before else "none"
    lines = [
        f"## {dataset} {task}: challenger {verdict}",
        "",
        f"**Reason:** {decision['reason']}",
        "",
        "| | model | " + decision["metric"] + " (challenger's test split) |",
        "|---|---|---|",
        f"| challenger | `{outcome['registered']}` | {cell(decision['challenger'])} |",
        f"| champion before | `{before}` | {cell(decision['champion'])} |",
        "",
        f"Champion now: `{outcome['champion']}`",
    ]
    create_markdown_artifact(
        markdown="\n".join(lines) + "\n",
        key=artifact_key("promotion", dataset, task),
        description=f"{dataset} {task}: {verdict}: {decision['reason']}",
    )


def publish_nightly(summary: dict[str, dict]) -> None:
    """One row per dataset of the nightly run: outcome, seconds, promotions."""
    table = [
        {
            "dataset": name,
            "outcome": entry["outcome"],
            "seconds": cell(entry.get("seconds")),
            "promoted": ", ".join(entry.get("promoted") or []) or "-",
            "reason": entry.get("reason") or "-",
        }
        for name, entry in summary.items()
    ]
    create_table_artifact(
        table=table, key="nightly-summary", description="nightly run per dataset"
    )
