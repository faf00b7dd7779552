"""MLflow runs -> DataFrames -> plotly figures -> one self-contained HTML report.

Reads only what docs/tracking-schema.md says search writes; never imports sr_core or search.
"""

from .figures import FigureUnavailable
from .html import build_report, render_page
from .load import ReportError, RunData, load_runs

__all__ = ["FigureUnavailable", "ReportError", "RunData", "build_report", "load_runs", "render_page"]
