"""Small models for the Tagger / export / predict tests: a tiny random BERT with MiniLM's tokenizer, a
text-only run trained for a few steps on real tweets, and an all-switches checkpoint (random weights)
whose recorded grounding uses random-weight YOLO and CLIP, so everything runs offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from comipn_prep.conll import read_conll, write_conll
from comipn_prep.layout import DatasetLayout

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
CLIP = "ViT-S-32"  # the smallest ViT open_clip builds; random weights
# What comipn-prep would have recorded for a random-weight grounding run (see comipn_model.data.prep_record).
RANDOM_GROUNDING = {"detector": "yolov8n.yaml", "clip_model": CLIP, "clip_pretrained": None, "top_k": 3,
                    "conf": 1e-05, "iou": 0.5, "nms_iou": 0.7, "max_candidates": 10, "prompt": "a photo of {}",
                    "random_weights": True}


def make_tiny_encoder(folder: Path, minilm_path: str) -> Path:
    """A random 2-layer BERT config (hidden 32) beside MiniLM's tokenizer files."""
    from transformers import BertConfig

    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (Path(minilm_path) / name).is_file():
            shutil.copyfile(Path(minilm_path) / name, folder / name)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    return folder


def train_text_only(base: Path, encoder: Path, twitter_data: Path, sizes=(16, 12, 12)) -> Path:
    """A text-only run folder from one short epoch on real Twitter-2017 tweets (CLI, like a user)."""
    from click.testing import CliRunner

    from comipn_model.cli import main

    root = base / "root"
    for split, n in zip(("train", "valid", "test"), sizes):
        tweets = read_conll(twitter_data / "twitter2017" / f"{split}.txt").tweets[:n]
        write_conll(DatasetLayout(root, "twitter2017").text_path(split), tweets)
    # What `comipn-prep ground` leaves beside its crops: the trainer copies its settings into best.pt.
    record = {"config": {**RANDOM_GROUNDING, "device": "cpu", "batch_size": 8}, "random_weights": True}
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


def make_checkpoint(path: Path, encoder: str | Path, *, switches: bool = True, prep: dict | None = None,
                    seed: int = 0, **model) -> Path:
    """A best.pt as training writes it, with random weights (quality does not matter here)."""
    from comipn_model import CoMIPN, CoMIPNConfig

    config = CoMIPNConfig(text_model=str(encoder), random_init=True, clip_model=CLIP, clip_pretrained=None,
                          use_prompt=switches, use_dynamic_matching=switches, use_contrastive=switches, **model)
    torch.manual_seed(seed)
    net = CoMIPN(config)
    with torch.no_grad():  # a CRF with strong random transitions tags something other than all-O
        for p in net.crf.parameters():
            p.normal_(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {k: v.detach().clone() for k, v in net.state_dict().items()},
                "model_config": config.to_dict(), "epoch": 1, "dev_f1": 0.5,
                "prep": {"grounding": dict(RANDOM_GROUNDING), "np_backend": "textblob"} if prep is None else prep},
               path)
    return path


def picture(path: Path | None = None, seed: int = 0, size=(640, 480)) -> Image.Image | Path:
    """A 640x480 picture of random blocks (a JPEG file when ``path`` is given)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (size[1] // 32, size[0] // 32, 3), dtype=np.uint8)
    image = Image.fromarray(np.kron(blocks, np.ones((32, 32, 1), dtype=np.uint8)))
    if path is None:
        return image
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)
    return path


def text_and_image_checkpoints(base: Path, minilm_path: str) -> dict:
    """A tiny encoder and two checkpoints on it: ``text`` (no switch: reads no image) and ``all`` (every
    switch on)."""
    encoder = make_tiny_encoder(base / "encoder", minilm_path)
    return {"text": make_checkpoint(base / "text" / "best.pt", encoder, switches=False),
            "all": make_checkpoint(base / "all" / "best.pt", encoder)}
