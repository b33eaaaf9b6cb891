"""Tag new tweets with a saved checkpoint: CoNLL in (labelled or not), CoNLL or JSONL out; images optional."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from comipn_prep.conll import atomic_write_bytes, entity_spans, format_conll, read_conll

from . import run_folder as rf
from .config import CoMIPNConfig
from .data import attach_images, load_aux_dict
from .training import build_model, make_collator, predict_examples, resolve_device

log = logging.getLogger(__name__)

FORMATS = ("conll", "jsonl")


@dataclass
class PredictOptions:
    load_path: str
    input: str
    out: str
    fmt: str | None = None  # None: from the output's suffix (.jsonl -> jsonl, else conll)
    text_model: str | None = None  # where the encoder's config + tokenizer are, if not where training had them
    images_dir: str | None = None
    aux_dict: str | None = None
    crops_dir: str | None = None
    feature_cache: str | None = None
    batch_size: int = 32
    device: str = "auto"
    force: bool = False


def output_format(opts: PredictOptions) -> str:
    fmt = opts.fmt or ("jsonl" if Path(opts.out).suffix.lower() in (".jsonl", ".json") else "conll")
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}: choose conll or jsonl")
    return fmt


def load_model(load_path: str | os.PathLike, device, text_model: str | None = None):
    """The model of a checkpoint: the encoder is built from its config (weights come from the file)."""
    state = rf.load_checkpoint(load_path)
    config = CoMIPNConfig.from_dict(state["model_config"])
    config.random_init = True
    if text_model:
        config.text_model = text_model
    model = build_model(config, device)
    model.load_state_dict(state["model"])
    model.eval()
    return model, config


def predict_file(opts: PredictOptions) -> int:
    """Tag ``opts.input`` into ``opts.out``; returns the number of tweets tagged."""
    fmt = output_format(opts)
    out = Path(opts.out)
    if out.exists() and not opts.force:
        raise FileExistsError(f"{out} exists: pass --force to overwrite it")
    conll = read_conll(opts.input, labeled=None)
    device = resolve_device(opts.device)
    model, config = load_model(opts.load_path, device, opts.text_model)
    with_images = config.uses_images and opts.images_dir is not None
    aux = load_aux_dict(Path(opts.aux_dict)) if opts.aux_dict else {}
    examples, counts = attach_images(conll.tweets, None, None, aux_k=config.aux_k, with_images=with_images,
                                     images_dir=Path(opts.images_dir) if opts.images_dir else None, aux=aux,
                                     crops_dir=Path(opts.crops_dir) if opts.crops_dir else None)
    collate = make_collator(model, config, [examples], [counts], opts.feature_cache, device)
    tags = predict_examples(model, examples, collate, opts.batch_size, device)
    if fmt == "conll":
        text = format_conll(conll.tweets, newline=conll.newline, final_blank_line=conll.final_blank_line,
                            extra_columns=tags)
    else:
        lines = []
        for tweet, pred in zip(conll.tweets, tags):
            entities = [{"type": t, "start": s, "end": e, "text": " ".join(tweet.tokens[s:e])}
                        for t, s, e in entity_spans(pred)]
            row = {"imgid": tweet.imgid, "tokens": tweet.tokens, "tags": pred, "entities": entities}
            if tweet.raw_labels is not None:
                row["gold"] = tweet.labels
            lines.append(json.dumps(row, ensure_ascii=False))
        text = "".join(line + "\n" for line in lines)
    atomic_write_bytes(out, text.encode("utf-8"))
    log.info("tagged %d tweets into %s (%s)", len(conll.tweets), out, fmt)
    return len(conll.tweets)
