"""How drift is measured and when it calls for a retrain: the calibrated defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

# Free text and identifiers: their levels name hosts, URIs and certificates of the
# testbed, so a new value is news about the testbed, not about behaviour.
EXCLUDED_COLUMNS: tuple[str, ...] = (
    "dns_query",
    "http_uri",
    "http_user_agent",
    "ssl_subject",
    "ssl_issuer",
)


@dataclass(frozen=True)
class DriftConfig:
    """How drift is measured and when it calls for a retrain.

    Calibrated with ``benchmarks/drift_core.py --calibrate`` on the real network
    file (all numbers in ``benchmarks/results/drift_calibration.md``): reference
    = 50,000 random rows; windows = other rows of the same class mix ("stable",
    5 draws) or of another mix of ``type`` (2 draws each); 33-35 columns
    compared; drift share min-max over the draws, each test at its default
    threshold; "log1p" = counters on the log scale (``log_scale``):

    ======================  =========  =========  =========  =========  =========
    window rows             500        1k         5k         20k        100k
    ======================  =========  =========  =========  =========  =========
    stable, default, log1p  0.00       0.00       0.00       0.00       0.00
    stable, default, raw    0.00-0.09  0.00-0.03  0.00       0.00-0.03  0.00
    stable, ks+chisquare    0.00-0.03  0.00-0.06  0.03-0.18  0.06-0.12  0.14-0.29
    ddos+scanning, log1p    0.36       0.33-0.36  0.36       0.36       0.35
    ddos+scanning, raw      0.18-0.24  0.15-0.18  0.18       0.18       0.18
    no normal, log1p        0.33-0.39  0.39-0.42  0.39       0.39       0.38-0.39
    only normal, log1p      0.48       0.48       0.48-0.53  0.46-0.50  0.46-0.47
    ======================  =========  =========  =========  =========  =========

    With a reference over 1,000 rows Evidently picks normed Wasserstein
    (numbers with > 5 values) and Jensen-Shannon (the rest), both at 0.1. On the
    raw scale the byte/packet counters make Wasserstein noisy when the reference
    is smaller: with 10,000 reference rows stable windows reach 0.18 (raw) and
    stay at 0.00 (log1p), hence ``log_scale``. K-S / chi-square p-values flag
    more stable columns the larger the window (0.29 at 100k; 0.45 at 20k with a
    10k reference), so they are not the default. ``drift_share_threshold`` 0.10
    sits between the stable floor (0.03 at most, any reference size, 1k+ rows)
    and the mildest shift (0.33); Evidently's own 0.5 would pass most shifts
    above as no drift. Stable 200-row windows reach 0.06, hence ``min_records``
    1,000. Sampling the window to 25,000 rows changes no decision (the 20k and
    100k columns agree) and takes a 100k window vs 50k reference from 9.4 to
    5.4-6.5 s, HTML written (2 cores; the first call in a process adds about
    7 s importing Evidently). ``cooldown_minutes`` is policy: one retrain per
    6 hours.

    Attributes:
        min_records: Windows with fewer records never trigger a retrain.
        drift_share_threshold: Share of compared columns that must drift.
        num_method, cat_method: Evidently stat test names for numeric and
            categorical columns; ``None`` keeps Evidently's size-based default.
        num_threshold, cat_threshold: Per-kind thresholds; ``None`` = the
            test's default.
        per_column_method, per_column_threshold: Overrides by column.
        max_reference_rows, max_current_rows: Larger frames are sampled to
            this many rows (seeded) to bound the report's time.
        excluded_columns: Never compared (free text, identifiers).
        max_categories: A categorical column with more distinct values in the
            reference is excluded as high-cardinality.
        min_column_values: A column with fewer non-null values in either frame
            is skipped (a distribution of a handful of values is noise).
        prediction_column: Column of model predictions to test for drift
            separately from the features.
        cooldown_minutes: No new retrain this soon after the last one.
        log_scale: Compare non-negative numeric columns with more than 5
            values (byte, packet counters, durations) as ``log1p(x)``.
        summary_table: Also render Evidently's summary table (it recomputes
            every column's drift twice more: about +3 s on 35 columns).
        seed: Seed of the sampling.
    """

    min_records: int = 1000
    drift_share_threshold: float = 0.10
    num_method: str | None = None
    cat_method: str | None = None
    num_threshold: float | None = None
    cat_threshold: float | None = None
    per_column_method: dict[str, str] = field(default_factory=dict)
    per_column_threshold: dict[str, float] = field(default_factory=dict)
    max_reference_rows: int | None = 50_000
    max_current_rows: int | None = 25_000
    excluded_columns: tuple[str, ...] = EXCLUDED_COLUMNS
    max_categories: int = 50
    min_column_values: int = 30
    prediction_column: str | None = None
    cooldown_minutes: float = 360.0
    log_scale: bool = True
    summary_table: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "drift_share_threshold": 0 < self.drift_share_threshold <= 1,
            "min_records": self.min_records >= 1,
            "max_categories": self.max_categories >= 1,
            "min_column_values": self.min_column_values >= 1,
            "max_reference_rows": (self.max_reference_rows or 2) >= 2,
            "max_current_rows": (self.max_current_rows or 2) >= 2,
            "cooldown_minutes": self.cooldown_minutes >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is out of range; expected "
                    f"{_RANGES[name]}"
                )


_RANGES = {
    "drift_share_threshold": "a share in (0, 1]",
    "min_records": "an integer >= 1",
    "max_categories": "an integer >= 1",
    "min_column_values": "an integer >= 1",
    "max_reference_rows": "None or an integer >= 2",
    "max_current_rows": "None or an integer >= 2",
    "cooldown_minutes": "minutes >= 0",
}
