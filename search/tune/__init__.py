"""Exactly what Ray Tune pickles and runs for a study: the Tuner, the trainable (inside each trial's
process), the driver's callback and its progress line, the Optuna searcher and store, the scheduler,
and the one module that touches Ray's private scheduler state."""
