"""What `sr-search run` does, in the order it happens:

    engine      run_study: the study from its file to its report (prepare, search, audit, final, close)
    session     the typed state one run carries between its steps (study, data, packing, guard)
    steps       the three Tune runs: the search, the pruning audit, the final step
    estimate    the cost estimate printed before anything starts (and --dry-run)
    audit       which pruned trials the audit resumes, and what it found (small pure functions)
    closing     the end of a run: the search's best, the final model, the report, the cost spent
    cluster     Ray: a local head or --address, the device probe, node-local scratch
    interrupts  Ctrl-C and SIGTERM: one honest stop, resumable with --resume
"""
