"""A model from a checkpoint, for test scoring, tagging and resuming: the checkpoint's own config builds
the network (its encoder from config only: the weights come from the file), and a checkpoint that does
not fit the network is one clear line naming both sides, not a page of ``size mismatch``."""

from __future__ import annotations

import logging
import os
import re

import torch

from . import run_folder as rf
from .builders import build_model
from .config import CoMIPNConfig

log = logging.getLogger(__name__)

_LAYER = re.compile(r"^encoders\.text\.encoder\.layer\.(\d+)\.")
_PARTS = ("prompts", "matching", "gate", "contrastive")


class CheckpointMismatch(ValueError):
    """The checkpoint's weights do not fit the network built for them."""


def describe_weights(weights: dict) -> dict:
    """What a state dict says about its network: encoder size, labels, the switches' parts."""
    words = weights.get("encoders.text.embeddings.word_embeddings.weight")
    emission = weights.get("emission.weight")
    layers = {int(m.group(1)) for k in weights if (m := _LAYER.match(k))}
    return {
        "encoder": (f"hidden {words.shape[1]}, {len(layers)} layers, vocabulary {words.shape[0]}"
                    if words is not None else "none"),
        "labels": f"{emission.shape[0]} labels" if emission is not None else "no label layer",
        "parts": "+".join(p for p in _PARTS if any(k.startswith(p + ".") for k in weights)) or "text only",
        "path encoders": str(len({k.split(".")[1] for k in weights if k.startswith("encoders.")})),
    }


def _side(desc: dict, keys) -> str:
    return "; ".join(f"{k} {desc[k]}" if k in ("parts", "path encoders") else desc[k] for k in keys)


def first_difference(expected: dict, weights: dict) -> str:
    """The first tensor that is of another shape, missing or unexpected, e.g.
    ``emission.weight: [9, 32] in the file, [5, 32] for the config``."""
    for key, tensor in expected.items():
        if key not in weights:
            return f"{key}: missing in the file"
        if tuple(weights[key].shape) != tuple(tensor.shape):
            return f"{key}: {list(weights[key].shape)} in the file, {list(tensor.shape)} for the config"
    extra = next((k for k in weights if k not in expected), None)
    return f"{extra}: not in the model built for the config" if extra else "no difference"


def load_weights(model: torch.nn.Module, weights: dict, path: str | os.PathLike, built_from: str) -> None:
    """``model.load_state_dict(weights)``; a mismatch raises :class:`CheckpointMismatch`, one line that
    names both sides (encoder size, labels, switches) and the first tensor that differs."""
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        expected = model.state_dict()
        ours, theirs = describe_weights(expected), describe_weights(weights)
        keys = [k for k in ours if ours[k] != theirs[k]] or list(ours)
        raise CheckpointMismatch(f"{path}: the weights do not fit the model config ({built_from}): the "
                                 f"checkpoint has {_side(theirs, keys)}, the model built here has "
                                 f"{_side(ours, keys)} (e.g. {first_difference(expected, weights)})") from None


def model_from_checkpoint(path: str | os.PathLike, device: torch.device, text_model: str | None = None):
    """``(model in eval mode, its CoMIPNConfig, the checkpoint dict)``. ``text_model``: where the encoder's
    config and tokenizer are now, if not where training had them."""
    from .preflight import check_text_encoder

    state = rf.load_checkpoint(path)
    config = CoMIPNConfig.from_dict(state["model_config"])
    config.random_init = True  # the architecture from its config; the weights come from the checkpoint
    built_from = f"the checkpoint's text encoder {config.text_model}"
    if text_model:
        config.text_model = text_model
        built_from = f"--text-model {text_model}"
    check_text_encoder(config.text_model, random_init=True)
    model = build_model(config, device, weights=f"weights from checkpoint {path}")
    load_weights(model, state["model"], path, built_from)
    model.eval()
    return model, config, state
