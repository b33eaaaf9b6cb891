"""``--compile``: the training network through ``torch.compile`` (forward and backward as generated
kernels: far fewer launches a step than eager mode, where the step at batch 8 is bound by launching
them), fed batches of a few fixed shapes so that it is not compiled again for every batch."""

from __future__ import annotations

import logging

import torch

from comipn_model.training.config import COMPILE_MODES

log = logging.getLogger(__name__)

# Sub-tokens and words of a batch padded up to a multiple of this: at max_seq 128, at most 4 lengths.
PAD_MULTIPLE = 32
# Graphs kept per compiled function: every (length, words, batch size) shape is one.
SHAPES_KEPT = 64


def compile_network(net: torch.nn.Module, mode: str = "default", *, backend: str = "inductor",
                    fullgraph: bool = False) -> torch.nn.Module:
    """``net`` compiled for static shapes (one graph per batch shape; with :data:`PAD_MULTIPLE` padding
    there are few); ``mode`` as ``torch.compile``'s (``reduce-overhead`` adds CUDA graphs on a GPU).
    ``backend`` and ``fullgraph`` as torch.compile's (tests: ``aot_eager`` traces without generating code;
    ``fullgraph=True`` fails on any graph break)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    import torch._dynamo

    # The default (8) would fall back to eager mode after 8 shapes: a run sees up to ~20.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, SHAPES_KEPT)
    log.info("training step compiled with torch.compile (mode %s, static shapes, batches padded to multiples "
             "of %d)", mode, PAD_MULTIPLE)
    if backend != "inductor":
        return torch.compile(net, backend=backend, dynamic=False, fullgraph=fullgraph)  # modes are inductor's
    return torch.compile(net, mode=mode, dynamic=False, fullgraph=fullgraph)
