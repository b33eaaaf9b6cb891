"""A model on disk: the run folder (``best.pt``, ``last.pt``, reports), the exported-model folder, and
the one loader that reads either back into a network."""
