"""Using a study's trained models, after `sr-search run`:

    predict            `sr-search predict`: upscale a folder with the final (or best) model
    evaluate           `sr-search evaluate`: score models on full-size benchmark folders, as papers do
    eval_table         the table `evaluate` prints (and the report shows)
    benchmark_folders  the benchmark folders' layouts (Set5-style HR-only, paired lr/ hr/) and their LR
"""
