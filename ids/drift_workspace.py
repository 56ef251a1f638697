"""A local Evidently workspace of drift runs, one project per dataset."""

from __future__ import annotations

import logging
from pathlib import Path

from ids.monitoring import DriftResult

logger = logging.getLogger(__name__)


def add_to_workspace(
    result: DriftResult, workspace_dir: str | Path, project_name: str
) -> str:
    """Store the run in a local Evidently workspace, one project per dataset.

    ``evidently ui --workspace DIR`` then shows the runs of each dataset over
    time, with a panel of the drifted-column share.

    Returns:
        The id of the stored run.

    Raises:
        ValueError: The result holds no Evidently run (nothing was compared).
    """
    if result.snapshot is None:
        raise ValueError(
            f"the drift result holds no Evidently run (rows_current="
            f"{result.rows_current}, compared columns: {result.compared_columns}); "
            "only a window that was compared can be stored"
        )
    if not project_name:
        raise ValueError(
            f"project_name must be a dataset name; received {project_name!r}"
        )
    from evidently.ui.workspace import Workspace

    Path(workspace_dir).mkdir(parents=True, exist_ok=True)
    workspace = Workspace(str(workspace_dir))
    found = workspace.search_project(project_name)
    project = found[0] if found else _create_project(workspace, project_name)
    ref = workspace.add_run(project.id, result.snapshot)
    logger.info(
        "drift run %s stored in workspace %s, project %r",
        ref.id,
        workspace_dir,
        project_name,
    )
    return str(ref.id)


def _create_project(workspace, project_name: str):
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    project = workspace.create_project(
        project_name, description=f"Data drift of {project_name} records"
    )
    project.dashboard.add_panel(
        line_plot_panel(
            title="Share of drifted columns",
            values=[
                PanelMetric(
                    legend="share",
                    metric="DriftedColumnsCount",
                    metric_labels={"value_type": "share"},
                )
            ],
        )
    )
    return project
