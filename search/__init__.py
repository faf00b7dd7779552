"""sr-search: hyperparameter search and experiment orchestration for 4x super-resolution.

    search/        the study machinery: cli, study, estimate, engine, state, cluster, interrupts,
                   tracking (the one MLflow writer), statuses, redaction, closing, predict, uis
    search/tune/   what Ray Tune pickles and runs (tuner, trainable, callback, searcher, scheduler)
    search/bench/  the benchmarks and GPU scripts; only search.cli imports it
"""
