"""``comipn-train export``: any saved model (a run folder, a ``best.pt``, an exported folder) written as
an exported folder (:mod:`comipn_model.saved.exported`)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from comipn_model.saved.exported import check_export_target, write_exported
from comipn_model.saved.loader import load_model


def export_model(load_path: str | os.PathLike, out_dir: str | os.PathLike, *, text_model: str | None = None,
                 force: bool = False, matching_tower: str | None = None, license: str | None = None) -> Path:
    """Write ``load_path`` (best.pt, a run folder, or an exported folder) as an exported folder.
    ``matching_tower``: where dynamic matching's tower is now, if moved (recorded in the export instead);
    ``license``: the model card's (a Hub license id; None: an exported source's, else ``unknown``)."""
    check_export_target(Path(out_dir), force)
    model, loaded = load_model(load_path, torch.device("cpu"), text_model=text_model, matching_tower=matching_tower)
    return write_exported(model, loaded, out_dir, force=force, license=license)
