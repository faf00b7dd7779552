"""sr-search: hyperparameter search and experiment orchestration for 4x super-resolution.

    search/        what every command shares: cli, study (the study file), tracking (the one MLflow
                   writer), state and workdir (a study's folder), rungs, redaction, errors, uis
    search/run/    what `sr-search run` does: engine, steps, session, estimate, audit, closing,
                   cluster, interrupts
    search/tune/   what Ray Tune pickles and runs: tuner, trainable, callback, searcher, scheduler,
                   statuses, packing (GPU fractions), sample_grid, state_upload
    search/apply/  using a trained model: predict, evaluate and its table, benchmark folders
    search/bench/  the benchmarks and GPU scripts; only search.cli imports it
Image science with no Ray, Optuna or MLflow in it (the comparison crops, the outside-photo check)
lives in sr_core.
"""
