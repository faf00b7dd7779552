"""MLflow runs -> DataFrames -> plotly figures -> one self-contained HTML report.

Reads only what docs/tracking-schema.md says search writes (its vocabulary: `sr_core.contract`, which
search imports too); never imports sr_core or search. The names below are loaded on first use, so
that importing `sr_core.contract` does not import pandas, plotly or MLflow.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"FigureUnavailable": "figures", "build_report": "html", "render_page": "html",
            "ReportError": "load", "RunData": "load", "load_runs": "load"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reports' has no attribute {name!r}")
    return getattr(importlib.import_module(f"reports.{_EXPORTS[name]}"), name)
