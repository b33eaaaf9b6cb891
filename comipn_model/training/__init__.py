"""Training: the run's config and presets, the checks before anything loads, the loop (prepare, resume,
epochs, selection on dev, one test scoring), optimizer, DDP, signals, tracking and metrics."""
