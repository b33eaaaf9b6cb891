"""Where work runs: the one reading of ``--device`` for grounding, training and tagging."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto``: CUDA when torch sees a device, else the CPU; ``cuda``: this process's CUDA device
    (``local_rank``'s under ``torchrun``, else the current one); ``cuda:N``: checked to exist. Asking for
    CUDA where torch sees none is a ValueError naming ``--device`` (exit 2 on the command line)."""
    name = str(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if not name.startswith("cuda"):
        if name not in ("cpu", "mps"):
            raise ValueError(f"--device {name!r}: use auto, cpu, cuda or cuda:N")
        return torch.device(name)
    if not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for, but torch sees no CUDA device (use --device cpu)")
    if name == "cuda":
        return torch.device("cuda") if local_rank is None else torch.device("cuda", local_rank)
    index = torch.device(name).index
    if index is not None and index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device(name)
