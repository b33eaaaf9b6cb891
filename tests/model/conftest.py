"""Fixtures of the comipn_model tests: pictures, and small runs trained on real tweets (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _picture(path: Path | None = None, seed: int = 0, size=(640, 480)) -> Image.Image | Path:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (size[1] // 32, size[0] // 32, 3), dtype=np.uint8)
    image = Image.fromarray(np.kron(blocks, np.ones((32, 32, 1), dtype=np.uint8)))
    if path is None:
        return image
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def picture():
    """``picture(path=None, seed=0, size=(640, 480))``: a picture of random 32-pixel blocks, the same for the
    same seed (a JPEG or PNG file when ``path`` is given: then the path is returned)."""
    return _picture


@pytest.fixture(scope="session")
def train_with_cli(tiny_args):
    """``train_with_cli(tiny, run_dir)``: one text-only comipn-train run (``tiny_args``) into ``run_dir``; it
    must succeed."""
    from click.testing import CliRunner

    from comipn_model.cli import main

    def train(tiny: dict, run_dir: Path) -> Path:
        result = CliRunner().invoke(main, tiny_args(tiny, run_dir))
        assert result.exit_code == 0, result.output
        return run_dir

    return train


@pytest.fixture(scope="session")
def train_text_only(make_root, random_grounding):
    """``train_text_only(base, encoder, sizes=(16, 12, 12))``: a text-only run folder ``base/run`` from one
    short epoch on real Twitter-2017 tweets (the CLI, like a user), its dataset recording a random-weight
    grounding run."""
    from click.testing import CliRunner

    from comipn_model.cli import main
    from comipn_prep.layout import DatasetLayout

    def train(base: Path, encoder: Path, sizes=(16, 12, 12)) -> Path:
        root = make_root(base / "root", sizes)
        # What `comipn-prep ground` leaves beside its crops: the trainer copies its settings into best.pt.
        record = {"config": {**random_grounding, "device": "cpu", "batch_size": 8}, "random_weights": True}
        aux = DatasetLayout(root, "twitter2017").aux_dir
        aux.mkdir(parents=True, exist_ok=True)
        (aux / "ground_run.json").write_text(json.dumps(record))
        run_dir = base / "run"
        result = CliRunner().invoke(main, [
            "--data-root", str(root), "--dataset", "twitter2017", "--text-model", str(encoder), "--random-init",
            "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--device", "cpu", "--run-dir", str(run_dir),
            "--no-use-prompt", "--no-use-dynamic-matching", "--no-use-contrastive"])
        assert result.exit_code == 0, result.output
        return run_dir

    return train


@pytest.fixture(scope="session")
def make_matching_tower():
    """``make_matching_tower(folder, kind="dinov2", registers=0, seed=0)``: a tiny random-weight DINO tower
    saved with save_pretrained beside its image processor config: ``dinov2`` (hidden 32, 2 layers, 56-pixel
    images of 14-pixel patches: 16 patches; ``registers`` > 0 makes a DINOv2 with registers) or ``vit``
    (the original DINO's ViTModel: 32-pixel images of 8-pixel patches, 16 patches)."""
    def make(folder: Path, kind: str = "dinov2", registers: int = 0, seed: int = 0) -> Path:
        import torch
        from transformers import (BitImageProcessor, Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig,
                                  Dinov2WithRegistersModel, ViTConfig, ViTImageProcessor, ViTModel)

        size = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
        torch.manual_seed(seed)
        if kind == "vit":
            model = ViTModel(ViTConfig(**size, image_size=32, patch_size=8), add_pooling_layer=False)
            processor = ViTImageProcessor(size={"height": 32, "width": 32})
        elif registers:
            model = Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**size, image_size=56, patch_size=14,
                                                                       num_register_tokens=registers))
            processor = BitImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
        else:
            model = Dinov2Model(Dinov2Config(**size, image_size=56, patch_size=14))
            processor = BitImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        return folder

    return make
