"""sr_core: the science of sr-search.

Models, data, metrics and one training trial. Knows nothing of Ray, Optuna or MLflow: the
`search` package orchestrates, `reports` reads what MLflow holds.
"""
