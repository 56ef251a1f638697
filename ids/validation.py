"""Great Expectations suites per dataset: regenerate, validate files, Data Docs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ids.catalog import (
    BOOLEAN,
    CATALOG,
    NUMERIC,
    NUMERIC_DASH,
    TARGET_COLUMNS,
    DatasetSpec,
    dataset_path,
    get_spec,
    resolve_data_dir,
)
from ids.data import file_fingerprint
from ids.suite_rules import column_kind, suite_expectations

logger = logging.getLogger(__name__)

CONTEXT_ROOT = Path(__file__).resolve().parent.parent / "expectations"
DATASOURCE = "ids_frames"
BATCH_DEFINITION = "whole_frame"
# telemetry_combined has no suite of its own: it is built from the device files,
# so validating each member file covers it.
SUITE_DATASETS: tuple[str, ...] = tuple(n for n, s in CATALOG.items() if not s.members)

_TRUE = {"true", "1", "1.0", "t"}
_FALSE = {"false", "0", "0.0", "f"}


@dataclass
class ValidationReport:
    """Outcome of validating one file against its dataset's suite."""

    dataset: str
    path: Path
    success: bool
    failed: list[dict] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)
    rows: int = 0
    release: str = ""

    def to_markdown(self) -> str:
        """A short summary with one table row per failed expectation."""
        verdict = "passed" if self.success else "FAILED"
        done = self.statistics.get("evaluated_expectations", 0)
        met = self.statistics.get("successful_expectations", 0)
        lines = [
            f"### Validation of `{self.dataset}`: {verdict}",
            "",
            f"File `{self.path}`: {self.rows:,} rows"
            + (f", {self.release} release" if self.release else "")
            + f"; {met} of {done} expectations met.",
        ]
        if self.failed:
            lines += [
                "",
                "| expectation | column | expected | observed |",
                "|---|---|---|---|",
            ]
            for item in self.failed:
                keys = ("expectation", "column", "kwargs", "observed")
                cells = [_cell(item[key]) for key in keys]
                lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _cell(value: object, width: int = 120) -> str:
    text = str(value if value not in (None, "") else "-")
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


def _suite_spec(name: str) -> DatasetSpec:
    spec = get_spec(name)
    if spec.members:
        raise ValueError(
            f"{name!r} has no suite of its own: it is merged from "
            f"{list(spec.members)}; validate each member file instead"
        )
    return spec


def _context(context_root: str | os.PathLike | None):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx  # slow import, kept out of `import ids`

    root = Path(context_root) if context_root else CONTEXT_ROOT
    return gx.get_context(mode="file", project_root_dir=str(root))


def _configure(context) -> None:
    """Persist quiet settings in great_expectations.yml: no analytics, no bars."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.enable_analytics(False)  # also saves the variables


def prepare_frame(raw: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The frame a suite sees: the file's strings typed the way the loader types them.

    Strings lose their padding and empty strings become null. Numeric columns
    become floats, '-' and text that is not a number becoming null (so the
    not-null expectations catch a garbled column). Boolean columns map
    true/false and 0/1 to 1.0/0.0, anything else to null. Categorical columns
    keep '-' as a level. Columns outside the spec stay as they are.
    """
    out = {}  # Arrow strips the 9M strings of the network file 3x faster than pandas
    for column in raw.columns:
        if column not in spec.columns and column not in TARGET_COLUMNS:
            out[column] = raw[column]
            continue
        text = _clean_text(raw[column])
        kind = column_kind(spec, column)
        if kind in (NUMERIC, NUMERIC_DASH):
            values = _to_float(pc.if_else(pc.equal(text, "-"), None, text))
        elif kind == BOOLEAN:
            lower = pc.utf8_lower(text)
            values = np.select(
                [_isin(lower, _TRUE), _isin(lower, _FALSE)], [1.0, 0.0], np.nan
            )
        else:
            # pandas' string dtype lets GX check the type once per column
            # instead of once per value.
            values = pd.array(text.to_numpy(zero_copy_only=False), dtype="string")
        out[column] = pd.Series(values, index=raw.index)
    return pd.DataFrame(out, index=raw.index)


def _clean_text(values: pd.Series):
    """Stripped strings as an Arrow array, empty strings turned to null."""
    try:
        text = pa.array(values.to_numpy(), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # typed values, not strings
        as_text = values.astype(str).where(values.notna())
        text = pa.array(as_text.to_numpy(), type=pa.string(), from_pandas=True)
    text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), None, text)


def _isin(text, choices: set[str]) -> np.ndarray:
    found = pc.is_in(text, value_set=pa.array(sorted(choices)))
    return pc.fill_null(found, False).to_numpy(zero_copy_only=False)


def _to_float(text) -> np.ndarray:
    try:
        return text.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:  # some value is not a number: it becomes null
        values = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
        return pd.to_numeric(values, errors="coerce").to_numpy(np.float64)


def _read_file(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.columns = [c.strip("\r") for c in frame.columns]
    return frame


def build_suite(
    name: str,
    data_dir: str | os.PathLike | None = None,
    context_root: str | os.PathLike | None = None,
):
    """Regenerate the suite of ``name`` from its trusted file and save it.

    Windows datasets without a file in the data folder get a suite built from
    the catalog's schema. The datasource, batch definition and validation
    definition that :func:`validate_file` uses are saved alongside.

    Returns:
        The saved ``great_expectations.ExpectationSuite``.

    Raises:
        FileNotFoundError: The trusted file of a telemetry or network dataset is
            missing.
        ValueError: ``name`` is unknown or has no suite (telemetry_combined).
    """
    import great_expectations as gx

    spec = _suite_spec(name)
    path = dataset_path(spec, resolve_data_dir(data_dir))
    frame = None
    if path.is_file():
        frame = prepare_frame(_read_file(path), spec)
    elif spec.layer != "application":
        raise FileNotFoundError(
            f"{name}: trusted file {str(path)!r} not found; a suite is learned from "
            f"the real {spec.relpath}; point --data-dir or $IDS_DATA_DIR at its folder"
        )
    expectations, meta = suite_expectations(name, spec, frame)
    if frame is not None:
        meta.update(
            source=spec.relpath,
            md5=file_fingerprint(path),
            rows=len(frame),
            release=spec.releases.get("ts" in frame.columns, "unknown"),
        )
    context = _context(context_root)
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=name, expectations=expectations, meta=meta)
    )
    _configure(context)
    if DATASOURCE in context.data_sources.all():
        source = context.data_sources.get(DATASOURCE)
    else:
        source = context.data_sources.add_pandas(DATASOURCE)
    if name not in source.get_asset_names():
        source.add_dataframe_asset(name=name)
    asset = source.get_asset(name)
    if BATCH_DEFINITION not in [b.name for b in asset.batch_definitions]:
        asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)
    batch = asset.get_batch_definition(BATCH_DEFINITION)
    context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    logger.info(
        "%s: saved suite of %d expectations from %s",
        name,
        len(suite.expectations),
        meta["source"],
    )
    return suite


def validate_file(
    name: str,
    path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    context_root: str | os.PathLike | None = None,
) -> ValidationReport:
    """Validate one file against the saved suite of ``name``, in one GX run.

    An empty or unparsable file is reported as failed, not raised.

    Raises:
        FileNotFoundError: The file is missing (the message names the path).
        LookupError: The context holds no suite for ``name``.
    """
    spec = _suite_spec(name)
    path = Path(path) if path else dataset_path(spec, resolve_data_dir(data_dir))
    if not path.is_file():
        raise FileNotFoundError(
            f"{name}: file {str(path)!r} not found; expected {spec.relpath} inside "
            "the data folder, or pass the path of the file to check"
        )
    try:
        raw = _read_file(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = "file is empty" if path.stat().st_size == 0 else "unreadable"
        failed = {
            "expectation": "read_csv",
            "column": None,
            "kwargs": "a CSV file with a header row",
            "observed": f"{reason}: {exc}",
        }
        stats = {"evaluated_expectations": 0, "successful_expectations": 0}
        return ValidationReport(name, path, False, [failed], stats, 0)
    frame = prepare_frame(raw, spec)
    context = _context(context_root)
    try:
        definition = context.validation_definitions.get(name)
    except Exception as exc:  # GX raises its own DataContextError subclasses
        raise LookupError(
            f"no suite for {name!r} in {context.root_directory}; run "
            f"`python -m ids.validation regenerate --dataset {name}` first"
        ) from exc
    # Copy-on-write halves the run: GX copies the frame for each metric.
    with pd.option_context("mode.copy_on_write", True):
        result = definition.run(
            batch_parameters={"dataframe": frame}, result_format="BASIC"
        )
    report = ValidationReport(
        dataset=name,
        path=path,
        success=bool(result.success),
        failed=[
            _summarize(r, list(frame.columns)) for r in result.results if not r.success
        ],
        statistics=dict(result.statistics),
        rows=len(frame),
        release=spec.releases.get("ts" in frame.columns, "unknown"),
    )
    logger.info(
        "%s: validated %s (%d rows): %s, %d failed expectation(s)",
        name,
        path,
        report.rows,
        "passed" if report.success else "failed",
        len(report.failed),
    )
    return report


def _summarize(result, columns: list[str]) -> dict:
    """One failed expectation as expectation, column, kwargs, observed value."""
    config = result.expectation_config
    column = config.kwargs.get("column")
    kwargs = {
        k: v
        for k, v in config.kwargs.items()
        if k not in ("column", "batch_id", "result_format")
    }
    if "value_set" in kwargs and len(kwargs["value_set"]) > 6:
        kwargs["value_set"] = f"{len(kwargs['value_set'])} values"
    details = result.result or {}
    errors = _exception_messages(result.exception_info or {})
    if column is not None and column not in columns:
        observed = "column absent from the file"
        if config.type == "expect_column_to_exist":
            observed += f"; it has {len(columns)} columns: {columns}"
    elif errors:
        observed = "error: " + "; ".join(errors)
    elif "observed_value" in details:
        observed = details["observed_value"]
    else:
        observed = (
            f"{details.get('unexpected_count', 0)} unexpected "
            f"({details.get('unexpected_percent') or 0:.2f}%), e.g. "
            f"{details.get('partial_unexpected_list', [])[:5]}"
        )
    return {
        "expectation": config.type,
        "column": column,
        "kwargs": ", ".join(f"{k}={v}" for k, v in kwargs.items()),
        "observed": observed,
    }


def _exception_messages(info: dict) -> list[str]:
    # GX reports an expectation's own error flat, a metric's error keyed by metric.
    if "raised_exception" in info:
        return [info["exception_message"]] if info["raised_exception"] else []
    return sorted({m for v in info.values() for m in _exception_messages(v)})


def build_data_docs(context_root: str | os.PathLike | None = None) -> Path:
    """Build the local Data Docs site; returns the path of its ``index.html``.

    The site lands in ``<context>/gx/uncommitted/data_docs/local_site``, which
    GX's own ``.gitignore`` in the context keeps out of version control.
    """
    context = _context(context_root)
    urls = context.build_data_docs()
    index = Path(str(urls["local_site"]).removeprefix("file://"))
    logger.info("Data Docs built at %s", index)
    return index


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m ids.validation``."""
    parser = argparse.ArgumentParser(
        prog="python -m ids.validation", description=__doc__
    )
    parser.add_argument("--context-root", help=f"GX project (default {CONTEXT_ROOT})")
    commands = parser.add_subparsers(dest="command", required=True)
    regenerate = commands.add_parser(
        "regenerate", help="rebuild suites from the trusted real files"
    )
    regenerate.add_argument(
        "--dataset", default="all", choices=[*SUITE_DATASETS, "all"]
    )
    regenerate.add_argument("--data-dir", help="folder holding Train_Test_datasets/")
    commands.add_parser("docs", help="build the Data Docs site")
    check = commands.add_parser("check", help="validate one file against its suite")
    check.add_argument("dataset", choices=SUITE_DATASETS)
    check.add_argument("--file", help="file to check (default: the dataset's file)")
    check.add_argument("--data-dir", help="folder holding Train_Test_datasets/")
    args = parser.parse_args(argv)
    # GX logs chatty INFO lines under file-path logger names: keep only ours.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    for name in ("ids", logger.name):  # logger.name is __main__ under `-m`
        logging.getLogger(name).setLevel(logging.INFO)

    if args.command == "regenerate":
        names = SUITE_DATASETS if args.dataset == "all" else (args.dataset,)
        for name in names:
            build_suite(name, args.data_dir, args.context_root)
        return 0
    if args.command == "docs":
        sys.stdout.write(f"{build_data_docs(args.context_root)}\n")
        return 0
    report = validate_file(args.dataset, args.file, args.data_dir, args.context_root)
    sys.stdout.write(report.to_markdown())
    return 0 if report.success else 1


if __name__ == "__main__":
    sys.exit(main())
