"""Generated Windows 7 / 10 host-metric files to the public schema, for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ids.catalog import WINDOWS7, WINDOWS10, DatasetSpec

SPECS: dict[str, DatasetSpec] = {WINDOWS7.name: WINDOWS7, WINDOWS10.name: WINDOWS10}

# Share of each attack class; normal takes the rest. mitm gets exactly one row
# so the SMOTE edge case (a class with fewer rows than neighbours) is exercised.
ATTACK_SHARES: dict[str, float] = {
    "backdoor": 0.06,
    "ddos": 0.08,
    "dos": 0.07,
    "injection": 0.05,
    "password": 0.06,
    "scanning": 0.07,
    "xss": 0.05,
    "ransomware": 0.004,
}
SINGLE_ROW_CLASS = "mitm"
MIN_ATTACK_ROWS = 4

# The columns that carry the signal: each class shifts their means by its own
# pattern (in noise standard deviations); every other column is pure noise.
SIGNAL_COLUMNS: tuple[str, ...] = (
    "Processor_pct_ Processor_Time",
    "Memory_pct_ Committed_Bytes_In_Use",
    "Network_I(Intel R _82574L_GNC) Bytes Sent sec",
    "LogicalDisk(_Total) Avg  Disk Bytes Write",
    "Process(_Total) Thread Count",
)
_SHIFTS: dict[str, tuple[float, ...]] = {
    "normal": (0, 0, 0, 0, 0),
    "backdoor": (4, 0, 0, 0, 4),
    "ddos": (0, 0, 6, 0, 0),
    "dos": (5, 0, 3, 0, 0),
    "injection": (0, 4, 0, 0, 4),
    "mitm": (0, 0, 4, 4, 0),
    "password": (0, 5, 0, 0, 0),
    "ransomware": (0, 0, 0, 6, 0),
    "scanning": (0, 0, 3, 0, 5),
    "xss": (3, 3, 0, 0, 0),
}
NAN_SHARE = 0.004
INF_CELLS = 5


def class_counts(n_rows: int) -> dict[str, int]:
    """Rows per class for a file of ``n_rows`` rows (normal is the majority)."""
    counts = {
        name: max(MIN_ATTACK_ROWS, round(share * n_rows))
        for name, share in ATTACK_SHARES.items()
    }
    counts[SINGLE_ROW_CLASS] = 1
    normal = n_rows - sum(counts.values())
    if normal <= max(counts.values()):
        raise ValueError(
            f"n_rows={n_rows} is too small for a normal majority; pass at least 200"
        )
    return {"normal": normal, **counts}


def make_windows_frame(
    name: str = "windows10", n_rows: int = 3000, seed: int = 0, with_ts: bool = True
) -> pd.DataFrame:
    """Rows of the ``name`` schema with ``label`` and ``type``, shuffled.

    A few cells are NaN and a few are infinite (written as 'inf' in a CSV).
    """
    spec = SPECS[name]
    rng = np.random.default_rng(seed)
    counts = class_counts(n_rows)
    types = np.repeat(list(counts), list(counts.values()))
    rng.shuffle(types)
    metrics = [c for c in spec.columns if c != "ts"]

    # Each metric has its own scale so that scaling matters to the models.
    scales = 10.0 ** rng.uniform(-1, 6, size=len(metrics))
    centres = scales * rng.uniform(2, 10, size=len(metrics))
    values = centres + scales * rng.standard_normal((n_rows, len(metrics)))
    for j, column in enumerate(SIGNAL_COLUMNS):
        k = metrics.index(column)
        shift = np.array([_SHIFTS[t][j] for t in types], dtype=float)
        values[:, k] += shift * scales[k]
    frame = pd.DataFrame(np.abs(values).round(4), columns=metrics)

    noise = [k for k, c in enumerate(metrics) if c not in SIGNAL_COLUMNS]
    cells = frame.to_numpy()
    missing = rng.random((n_rows, len(noise))) < NAN_SHARE
    cells[:, noise] = np.where(missing, np.nan, cells[:, noise])
    rows = rng.choice(n_rows, size=INF_CELLS, replace=False)
    cells[rows, rng.choice(noise, size=INF_CELLS)] = np.inf
    frame = pd.DataFrame(cells, columns=metrics)

    if with_ts:
        start = 1_556_000_000
        steps = rng.integers(1, 5, size=n_rows)
        frame.insert(0, "ts", start + np.cumsum(steps))
    frame["label"] = (types != "normal").astype(int)
    frame["type"] = types
    return frame


def write_windows_dataset(
    data_dir: Path, name: str, n_rows: int = 3000, seed: int = 0
) -> Path:
    """Write a generated ``name`` file at its official path inside ``data_dir``."""
    spec = SPECS[name]
    path = Path(data_dir) / spec.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    make_windows_frame(name, n_rows, seed).to_csv(path, index=False)
    return path
