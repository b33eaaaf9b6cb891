"""What a checkpoint or an exported folder holds, read and not yet built into a network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from comipn_model.network.config import CoMIPNConfig
from comipn_model.version import __version__


@dataclass
class LoadedModel:
    """What a checkpoint or an exported folder holds, before the network is built."""

    config: CoMIPNConfig
    state: dict[str, torch.Tensor]
    prep: dict  # {"grounding": {...} | None, "np_backend": str | None}
    source: Path
    meta: dict  # epoch, dev_f1, test figures, ... (informational)
    # The whole checkpoint (a .pt: optimizer, scheduler and RNG states of last.pt, ...); None for an
    # exported folder, which holds the weights only.
    checkpoint: dict | None = None


def model_config_of(data: dict, source: Path) -> CoMIPNConfig:
    try:
        return CoMIPNConfig.from_dict(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: a model from another comipn version ({err}); this is comipn "
                         f"{__version__}") from None
