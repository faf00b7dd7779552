"""Exactly what Ray Tune pickles and runs for a study: the Tuner, the trainable (inside each trial's
process) and its GPU packing, the driver's callback, its progress line and the statuses it decides,
the sample grid it logs, the Optuna searcher and store, the scheduler, the experiment-state upload,
and the one module that touches Ray's private scheduler state."""
