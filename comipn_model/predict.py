"""Tag a file of tweets with a saved model (``comipn-train predict``), through :class:`~comipn_model.Tagger`.

Input, one of:
- CoNLL (``IMGID:`` lines, tokens with or without gold labels), images from ``--images-dir``, crops from
  an aux dict (prepared with ``comipn-prep``) or, without one, grounded on the fly;
- plain text, one raw tweet per line (tokenised like the Twitter datasets; blank lines skipped);
- JSONL, one object per line: ``{"text": "..."}`` or ``{"tokens": [...]}``, optionally ``"image"`` (a path,
  relative to ``--images-dir`` or else to the file's folder), ``"crops"`` (prepared crop paths) and ``"id"``.

Output (CoNLL or JSONL) keeps the input's order and ids (a CoNLL tweet's IMGID; a raw tweet's ``id``, or
else its line number).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from comipn_prep.conll import Tweet, atomic_write_bytes, format_conll, read_conll
from comipn_prep.jsonl import json_lines

from .tagger import Tagger, TaggedTweet

log = logging.getLogger(__name__)

FORMATS = ("conll", "jsonl")
INPUT_FORMATS = ("auto", "conll", "text", "jsonl")


@dataclass
class PredictOptions:
    load_path: str
    input: str
    out: str
    fmt: str | None = None  # None: from the output's suffix (.jsonl -> jsonl, else conll)
    input_format: str = "auto"  # auto: .jsonl/.json -> jsonl; IMGID/tab lines -> conll; else text
    text_model: str | None = None  # where the encoder's config + tokenizer are, if not where training had them
    images_dir: str | None = None
    aux_dict: str | None = None
    crops_dir: str | None = None
    feature_cache: str | None = None
    clip_pretrained: str | None = None  # the model's vision tower, if not the training's ("none": random)
    grounding: dict = field(default_factory=dict)  # overrides of the recorded grounding settings
    np_backend: str | None = None
    batch_size: int = 32
    device: str = "auto"
    precision: str = "auto"  # see Tagger.from_pretrained
    force: bool = False
    from_hub: bool = False  # a load_path that is no local path is a Hub repository id to download
    trust_detector: bool = False  # load the model's recorded detector even if it is a pickle (.pt)


@dataclass
class InputRow:
    """One tweet to tag and where it came from."""

    id: str
    line: int
    tokens: list[str] | None = None
    text: str | None = None
    image: Path | None = None
    crops: list[Path] | None = None
    gold: list[str] | None = None


def output_format(opts: PredictOptions) -> str:
    fmt = opts.fmt or ("jsonl" if Path(opts.out).suffix.lower() in (".jsonl", ".json") else "conll")
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}: choose conll or jsonl")
    return fmt


def detect_input_format(path: Path) -> str:
    """jsonl by suffix; conll when the first non-blank line is an IMGID line or has a tab; else text."""
    if path.suffix.lower() in (".jsonl", ".json"):
        return "jsonl"
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return "conll" if line.startswith("IMGID:") or "\t" in line else "text"
    return "text"


def _image_path(value: str, base: Path, where: str) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise FileNotFoundError(f"{where}: image {value}: no such file ({path})")
    return path


def read_text_rows(path: Path) -> list[InputRow]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if line.strip():
            rows.append(InputRow(id=str(lineno), line=lineno, text=line.strip()))
    return rows


def read_jsonl_rows(path: Path, images_dir: Path | None, with_images: bool) -> list[InputRow]:
    base = images_dir or path.parent
    rows = []
    for lineno, where, obj in json_lines(path):
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: each line must be a JSON object, found {type(obj).__name__}")
        text, tokens = obj.get("text"), obj.get("tokens")
        if (text is None) == (tokens is None):
            raise ValueError(f"{where}: give exactly one of \"text\" (a string) or \"tokens\" (a list of strings)")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"{where}: \"text\" must be a string")
        if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens)):
            raise ValueError(f"{where}: \"tokens\" must be a list of strings")
        row_id = obj.get("id", obj.get("imgid", lineno))
        if not isinstance(row_id, (str, int)) or isinstance(row_id, bool):
            raise ValueError(f"{where}: \"id\" must be a string or a number")
        row = InputRow(id=str(row_id), line=lineno, text=text, tokens=tokens)
        image, crops = obj.get("image"), obj.get("crops")
        if image is not None and not isinstance(image, str):
            raise ValueError(f"{where}: \"image\" must be a path (a string)")
        if crops is not None and (not isinstance(crops, list) or not all(isinstance(c, str) for c in crops)):
            raise ValueError(f"{where}: \"crops\" must be a list of paths")
        if with_images:  # a text-only model reads no image: nothing to check
            row.image = _image_path(image, base, where) if image else None
            row.crops = [_image_path(c, base, where) for c in crops] if crops is not None else None
        rows.append(row)
    return rows


def read_conll_rows(path: Path, opts: PredictOptions, tagger: Tagger) -> tuple[list[InputRow], object]:
    """CoNLL tweets with their image (``--images-dir``) and prepared crops (``--aux-dict``): the same
    pairing as training's (missing files are masked); without an aux dict the images are grounded."""
    from .data import attach_images, load_aux_dict

    conll = read_conll(path, labeled=None)
    config = tagger.config
    with_images = config.uses_images and opts.images_dir is not None
    aux = load_aux_dict(Path(opts.aux_dict)) if opts.aux_dict else {}
    examples, _ = attach_images(conll.tweets, None, None, aux_k=config.aux_k, with_images=with_images,
                                images_dir=Path(opts.images_dir) if opts.images_dir else None, aux=aux,
                                crops_dir=Path(opts.crops_dir) if opts.crops_dir else None)
    rows = []
    for tweet, ex in zip(conll.tweets, examples):
        row = InputRow(id=tweet.imgid, line=tweet.line, tokens=tweet.tokens,
                       gold=tweet.labels if tweet.raw_labels is not None else None)
        if with_images:
            row.image = ex.image_paths[0] if ex.image_paths else None
            row.crops = list(ex.image_paths[1:]) if opts.aux_dict else None
        rows.append(row)
    return rows, conll


def predict_file(opts: PredictOptions) -> int:
    """Tag ``opts.input`` into ``opts.out``; returns the number of tweets tagged."""
    fmt = output_format(opts)
    out = Path(opts.out)
    if out.exists() and not opts.force:
        raise FileExistsError(f"{out} exists: pass --force to overwrite it")
    source = Path(opts.input)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such input file")
    if opts.input_format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {opts.input_format!r}: choose {', '.join(INPUT_FORMATS)}")
    kind = detect_input_format(source) if opts.input_format == "auto" else opts.input_format
    if kind == "conll":
        read_conll(source, labeled=None)  # bad input is reported before any model loads
    feature_cache = opts.feature_cache
    if feature_cache is None and kind == "conll" and opts.images_dir:
        from .training import default_feature_cache

        feature_cache = str(default_feature_cache())
    overrides = {}
    if opts.clip_pretrained is not None:
        overrides["clip_pretrained"] = None if opts.clip_pretrained.lower() in ("", "none") else opts.clip_pretrained
    tagger = Tagger.from_pretrained(opts.load_path, opts.device, text_model=opts.text_model,
                                    grounding=opts.grounding, np_backend=opts.np_backend,
                                    feature_cache=feature_cache, precision=opts.precision, progress=True,
                                    from_hub=opts.from_hub, trust_detector=opts.trust_detector, **overrides)
    conll = None
    if kind == "conll":
        rows, conll = read_conll_rows(source, opts, tagger)
    elif kind == "jsonl":
        rows = read_jsonl_rows(source, Path(opts.images_dir) if opts.images_dir else None, tagger.uses_images)
    else:
        rows = read_text_rows(source)
    results = tag_rows(tagger, rows, source, opts.batch_size)
    text = format_output(rows, results, fmt, conll, with_crops=tagger.uses_images)
    atomic_write_bytes(out, text.encode("utf-8"))
    log.info("tagged %d tweets of %s (%s) into %s (%s)", len(rows), source, kind, out, fmt)
    return len(rows)


def tag_rows(tagger: Tagger, rows: list[InputRow], source: Path, batch_size: int) -> list[TaggedTweet]:
    """Tag rows in order; an image that cannot be decoded is reported with its input line."""
    from comipn_prep.images import ImageLoadError

    texts = [row.tokens if row.tokens is not None else row.text for row in rows]
    images = [row.image for row in rows]
    crops = [row.crops for row in rows]
    try:
        return tagger(texts, images if tagger.uses_images else None,
                      crops=crops if tagger.uses_images else None, batch_size=batch_size,
                      return_crop_images=False)
    except ImageLoadError as err:
        lines = [row.line for row in rows if str(row.image) == err.path or
                 any(str(c) == err.path for c in row.crops or [])]
        where = f"{source}:{lines[0]}" if lines else str(source)
        raise ValueError(f"{where}: image {err.path}: {err.status} ({err.reason})") from None


def format_output(rows: list[InputRow], results: list[TaggedTweet], fmt: str, conll=None,
                  with_crops: bool = False) -> str:
    if fmt == "conll":
        if conll is not None:
            return format_conll(conll.tweets, newline=conll.newline, final_blank_line=conll.final_blank_line,
                                extra_columns=[r.tags for r in results])
        tweets = [Tweet(imgid=row.id, tokens=res.tokens) for row, res in zip(rows, results)]
        return format_conll(tweets, extra_columns=[r.tags for r in results])
    lines = []
    for row, res in zip(rows, results):
        item = {"id": row.id}
        if conll is not None:
            item["imgid"] = row.id
        item.update(tokens=res.tokens, tags=res.tags, entities=res.entities)
        if row.gold is not None:
            item["gold"] = row.gold
        if with_crops:
            item["image"] = str(row.image) if row.image is not None else None
            item["crops"] = res.crops
        lines.append(json.dumps(item, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)

