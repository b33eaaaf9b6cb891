"""The one place that builds a Co-MIPN network from its config, and that loads weights into it: a
state dict that does not fit the network is one clear line naming both sides, not a page of
``size mismatch``."""

from __future__ import annotations

import os
import re

import torch

from comipn_prep.logs import quiet_transformers

from comipn_model.network.config import CoMIPNConfig
from comipn_model.network.model import CoMIPN
from comipn_model.network.text_encoder import load_text_encoder


def build_model(model_config: CoMIPNConfig, device: torch.device, weights: str | None = None) -> CoMIPN:
    """The network on ``device``. ``weights``: where its weights will come from (a checkpoint), said in
    the log instead of "random weights"."""
    with quiet_transformers():
        encoder, tokenizer = load_text_encoder(model_config.text_model, model_config.random_init, weights=weights)
        model = CoMIPN(model_config, encoder=encoder, tokenizer=tokenizer)
    return model.to(device)


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
