"""The ToN-IoT Train_Test datasets: files, columns, column kinds, leakage columns."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# The fixed ten-class vocabulary; its order is the column order of every
# multi-class probability matrix the project produces.
CLASSES: tuple[str, ...] = (
    "normal",
    "backdoor",
    "ddos",
    "dos",
    "injection",
    "mitm",
    "password",
    "ransomware",
    "scanning",
    "xss",
)
BINARY_CLASSES: tuple[str, ...] = ("normal", "attack")
TASKS: tuple[str, ...] = ("binary", "multiclass")
TARGET_COLUMNS: tuple[str, ...] = ("label", "type")

# Column kinds. "numeric" parses as a number; "numeric_dash" is a number stored as
# text where '-' means "not applicable"; "boolean" holds true/false and 0/1 in the
# same column; "categorical" is an open or closed set of strings ('-' is a level).
NUMERIC = "numeric"
NUMERIC_DASH = "numeric_dash"
BOOLEAN = "boolean"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, NUMERIC_DASH, BOOLEAN, CATEGORICAL)

# Prefix of the 0/1 column that marks a numeric value as absent ('-' in the
# file, or a column the device lacks in telemetry_combined).
ABSENT_PREFIX = "absent__"
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared/data/ton_iot"
DATA_DIR_ENV = "IDS_DATA_DIR"

_IOT = "Train_Test_datasets/Train_Test_IoT_dataset"
_NETWORK = "Train_Test_datasets/Train_Test_Network_dataset"
_WINDOWS = "Train_Test_datasets/Train_Test_Windows_dataset"
_TIME_COLUMNS = ("ts", "date", "time")


@dataclass(frozen=True)
class DatasetSpec:
    """What the project knows of one Train_Test dataset.

    Attributes:
        name: Catalog name, e.g. ``"network"``.
        layer: ``"physical"``, ``"network"`` or ``"application"``.
        relpath: File path inside the data folder, in the official layout.
        columns: Input columns in file order and their kinds (targets excluded).
        leakage_columns: Columns dropped before modelling because they identify
            time or the testbed rather than behaviour.
        optional_columns: Columns one release has and another lacks.
        releases: Known releases, keyed by whether the header starts with ``ts``.
        paper_accuracy: The published accuracy per task, where the paper gives one.
        relieff_features: How many features ReliefF keeps, if it runs at all.
        smote: Whether the training split is balanced with SMOTE.
        members: For a merged dataset, the datasets it is built from.
    """

    name: str
    layer: str
    relpath: str
    columns: dict[str, str]
    leakage_columns: tuple[str, ...] = ()
    optional_columns: tuple[str, ...] = ()
    releases: dict[bool, str] = field(default_factory=dict)
    paper_accuracy: dict[str, float] = field(default_factory=dict)
    relieff_features: int | None = None
    smote: bool = False
    members: tuple[str, ...] = ()

    @property
    def feature_columns(self) -> list[str]:
        """Input columns left once the leakage columns are removed."""
        return [c for c in self.columns if c not in self.leakage_columns]

    @property
    def required_columns(self) -> list[str]:
        """Columns every release of the file has, targets included."""
        kept = [c for c in self.columns if c not in self.optional_columns]
        return kept + list(TARGET_COLUMNS)

    def classes(self, task: str) -> tuple[str, ...]:
        """The fixed class vocabulary of ``task``."""
        check_task(task)
        return BINARY_CLASSES if task == "binary" else CLASSES


def check_task(task: str) -> str:
    """Return ``task`` if it is a known task, else raise."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return task


def _telemetry(
    name: str, filename: str, columns: dict[str, str], paper: float
) -> DatasetSpec:
    time_cols = {"ts": NUMERIC, "date": CATEGORICAL, "time": CATEGORICAL}
    return DatasetSpec(
        name=name,
        layer="physical",
        relpath=f"{_IOT}/{filename}",
        columns={**time_cols, **columns},
        leakage_columns=_TIME_COLUMNS,
        optional_columns=("ts",),
        releases={True: "newer (ts,date,time)", False: "older (date,time)"},
        paper_accuracy={"multiclass": paper},
    )


TELEMETRY_DEVICES: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _telemetry(
            "fridge",
            "Train_Test_IoT_Fridge.csv",
            {"fridge_temperature": NUMERIC, "temp_condition": CATEGORICAL},
            0.78,
        ),
        _telemetry(
            "garage_door",
            "Train_Test_IoT_Garage_Door.csv",
            {"door_state": CATEGORICAL, "sphone_signal": BOOLEAN},
            0.85,
        ),
        _telemetry(
            "gps_tracker",
            "Train_Test_IoT_GPS_Tracker.csv",
            {"latitude": NUMERIC, "longitude": NUMERIC},
            0.95,
        ),
        _telemetry(
            "modbus",
            "Train_Test_IoT_Modbus.csv",
            {
                "FC1_Read_Input_Register": NUMERIC,
                "FC2_Read_Discrete_Value": NUMERIC,
                "FC3_Read_Holding_Register": NUMERIC,
                "FC4_Read_Coil": NUMERIC,
            },
            0.98,
        ),
        _telemetry(
            "motion_light",
            "Train_Test_IoT_Motion_Light.csv",
            {"motion_status": NUMERIC, "light_status": CATEGORICAL},
            0.76,
        ),
        _telemetry(
            "thermostat",
            "Train_Test_IoT_Thermostat.csv",
            {"current_temperature": NUMERIC, "thermostat_status": NUMERIC},
            0.86,
        ),
        _telemetry(
            "weather",
            "Train_Test_IoT_Weather.csv",
            {"temperature": NUMERIC, "pressure": NUMERIC, "humidity": NUMERIC},
            0.98,
        ),
    )
}

_NETWORK_COLUMNS: dict[str, str] = {
    "ts": NUMERIC,
    "src_ip": CATEGORICAL,
    "src_port": NUMERIC,
    "dst_ip": CATEGORICAL,
    "dst_port": NUMERIC,
    "proto": CATEGORICAL,
    "service": CATEGORICAL,
    "duration": NUMERIC,
    "src_bytes": NUMERIC,
    "dst_bytes": NUMERIC,
    "conn_state": CATEGORICAL,
    "missed_bytes": NUMERIC,
    "src_pkts": NUMERIC,
    "src_ip_bytes": NUMERIC,
    "dst_pkts": NUMERIC,
    "dst_ip_bytes": NUMERIC,
    "dns_query": CATEGORICAL,
    "dns_qclass": NUMERIC,
    "dns_qtype": NUMERIC,
    "dns_rcode": NUMERIC,
    "dns_AA": CATEGORICAL,
    "dns_RD": CATEGORICAL,
    "dns_RA": CATEGORICAL,
    "dns_rejected": CATEGORICAL,
    "ssl_version": CATEGORICAL,
    "ssl_cipher": CATEGORICAL,
    "ssl_resumed": CATEGORICAL,
    "ssl_established": CATEGORICAL,
    "ssl_subject": CATEGORICAL,
    "ssl_issuer": CATEGORICAL,
    "http_trans_depth": NUMERIC_DASH,
    "http_method": CATEGORICAL,
    "http_uri": CATEGORICAL,
    "http_version": CATEGORICAL,
    "http_request_body_len": NUMERIC,
    "http_response_body_len": NUMERIC,
    "http_status_code": NUMERIC,
    "http_user_agent": CATEGORICAL,
    "http_orig_mime_types": CATEGORICAL,
    "http_resp_mime_types": CATEGORICAL,
    "weird_name": CATEGORICAL,
    "weird_addl": NUMERIC_DASH,
    "weird_notice": CATEGORICAL,
}

NETWORK = DatasetSpec(
    name="network",
    layer="network",
    relpath=f"{_NETWORK}/train_test_network.csv",
    columns=_NETWORK_COLUMNS,
    # ts, IPs and ports are the paper's filter; dns_query names the testbed's
    # hosts (data README), so it is a label proxy too.
    leakage_columns=("ts", "src_ip", "dst_ip", "src_port", "dst_port", "dns_query"),
    optional_columns=("ts",),
    releases={
        True: "newer (461,043 rows, with ts)",
        False: "older (211,043 rows, no ts)",
    },
    paper_accuracy={"binary": 0.99, "multiclass": 0.99},
    smote=True,
)


def _windows_columns(extra: tuple[str, ...]) -> dict[str, str]:
    # A representative part of the public Perfmon-derived schema: names keep their
    # inner and double spaces exactly as the released files spell them.
    names = (
        "Processor_DPC_Rate",
        "Processor_pct_ Idle_Time",
        "Processor_pct_ C3_Time",
        "Processor_pct_ Interrupt_Time",
        "Processor_pct_ C2_Time",
        "Processor_pct_ User_Time",
        "Processor_pct_ C1_Time",
        "Processor_pct_ Processor_Time",
        "Processor_C1_Transitions_sec",
        "Processor_pct_ DPC_Time",
        "Processor_pct_ Privileged_Time",
        "Processor_Interrupts_sec",
        "Memory_pct_ Committed_Bytes_In_Use",
        "Memory_Available_Bytes",
        "Memory_Cache_Faults_sec",
        "Memory_Page_Faults_sec",
        "Memory_Pages_sec",
        "Memory_Pool_Nonpaged_Bytes",
        "Memory_Pool_Paged_Bytes",
        "Memory_Committed_Bytes",
        "Network_I(Intel R _82574L_GNC) Bytes Received sec",
        "Network_I(Intel R _82574L_GNC) Bytes Sent sec",
        "Network_I(Intel R _82574L_GNC) Packets sec",
        "Network_I(Intel R _82574L_GNC) Packets Received Errors",
        "LogicalDisk(_Total) Avg  Disk Bytes Write",
        "LogicalDisk(_Total) Avg  Disk Bytes Read",
        "LogicalDisk(_Total) Disk Reads sec",
        "LogicalDisk(_Total) Disk Writes sec",
        "LogicalDisk(_Total) pct_ Free Space",
        "LogicalDisk(_Total) Avg  Disk Queue Length",
        "Process(_Total) IO Data Operations sec",
        "Process(_Total) Handle Count",
        "Process(_Total) Thread Count",
        "Process(_Total) Working Set",
        "Process(_Total) Page File Bytes",
        "System_Processes",
        "System_Threads",
        "System_Context_Switches_sec",
        "System_System_Calls_sec",
    ) + extra
    return {"ts": NUMERIC, **{name: NUMERIC for name in names}}


_WINDOWS_COMMON = dict(
    layer="application",
    leakage_columns=("ts",),
    optional_columns=("ts",),
    releases={True: "with ts", False: "without ts"},
    smote=True,
)

WINDOWS7 = DatasetSpec(
    name="windows7",
    relpath=f"{_WINDOWS}/windows7_dataset.csv",
    columns=_windows_columns(
        (
            "Cache_Copy_Reads_sec",
            "Cache_Data_Map_Hits_pct",
            "Paging_File(_Total) pct_ Usage",
            "TCPv4_Connections_Established",
        )
    ),
    relieff_features=25,
    **_WINDOWS_COMMON,
)
WINDOWS10 = DatasetSpec(
    name="windows10",
    relpath=f"{_WINDOWS}/windows10_dataset.csv",
    columns=_windows_columns(("TCPv6_Connections_Established",)),
    relieff_features=20,
    **_WINDOWS_COMMON,
)


def _combined() -> DatasetSpec:
    columns: dict[str, str] = {"device": CATEGORICAL}
    for spec in TELEMETRY_DEVICES.values():
        columns.update({c: k for c, k in spec.columns.items() if c not in columns})
    return DatasetSpec(
        name="telemetry_combined",
        layer="physical",
        relpath=_IOT,
        columns=columns,
        leakage_columns=_TIME_COLUMNS,
        optional_columns=("ts",),
        releases={True: "per device", False: "per device"},
        members=tuple(TELEMETRY_DEVICES),
    )


TELEMETRY_COMBINED = _combined()
CATALOG: dict[str, DatasetSpec] = {
    **TELEMETRY_DEVICES,
    TELEMETRY_COMBINED.name: TELEMETRY_COMBINED,
    NETWORK.name: NETWORK,
    WINDOWS7.name: WINDOWS7,
    WINDOWS10.name: WINDOWS10,
}


def get_spec(name: str) -> DatasetSpec:
    """Return the catalog entry called ``name``."""
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; expected one of {sorted(CATALOG)}"
        ) from None


def device_columns(device: str) -> list[str]:
    """Feature columns one telemetry device reports (no time columns)."""
    return get_spec(device).feature_columns


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data folder: ``data_dir``, else ``$IDS_DATA_DIR``, else the default.

    Raises:
        FileNotFoundError: The folder does not exist; the message says where the
            ToN-IoT files are expected.
    """
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    path = Path(chosen).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"ToN-IoT data folder {str(path)!r} does not exist. Put the official "
            f"download there (it holds {_IOT}/Train_Test_IoT_Fridge.csv, ... and "
            f"{_NETWORK}/train_test_network.csv), or point --data-dir or "
            f"${DATA_DIR_ENV} at the folder that holds Train_Test_datasets/."
        )
    return path


def dataset_path(spec: DatasetSpec, data_dir: Path) -> Path:
    """Path of the file behind ``spec`` inside ``data_dir``."""
    return data_dir / spec.relpath


def find_datasets(data_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Datasets whose file exists in the data folder, with their paths."""
    root = resolve_data_dir(data_dir)
    found: dict[str, Path] = {}
    for name, spec in CATALOG.items():
        if spec.members:
            paths = [dataset_path(get_spec(m), root) for m in spec.members]
            if all(p.is_file() for p in paths):
                found[name] = dataset_path(spec, root)
        elif dataset_path(spec, root).is_file():
            found[name] = dataset_path(spec, root)
    return found
