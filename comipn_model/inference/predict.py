"""Tag a file of tweets with a saved model (``comipn-train predict``), through :class:`~comipn_model.Tagger`.

Input, one of:
- CoNLL (``IMGID:`` lines, tokens with or without gold labels), images from ``--images-dir``, crops from
  an aux dict (prepared with ``comipn-prep``) or, without one, grounded on the fly;
- plain text, one raw tweet per line (tokenised like the Twitter datasets; blank lines skipped);
- JSONL, one object per line: ``{"text": "..."}`` or ``{"tokens": [...]}``, optionally ``"image"`` (a path,
  relative to ``--images-dir`` or else to the file's folder), ``"crops"`` (prepared crop paths) and ``"id"``.

Output (CoNLL or JSONL) keeps the input's order and ids (a CoNLL tweet's IMGID; a raw tweet's ``id``, or
else its line number). A JSONL line holds the tweet's ``text`` (as given, or its tokens joined by
spaces), ``tokens``, ``tags`` and ``entities`` (:mod:`comipn_model.inference.entities`: ``entity_group``,
``score``, ``word``, character ``start``/``end`` in ``text``, ``token_start``/``token_end``), and with
``--marginals`` each token's label probabilities. JSONL output of a model with images says per tweet
whether its image was used (``"image_used"``, and a ``"reason"`` when not: ``missing: ...``,
``unreadable: ...``, ``no image given``) and per crop likewise (``"used"``, ``"reason"``); unreadable
files are masked, logged once each and counted.

Order of the checks: the input is read and validated in full (UTF-8 and JSON with ``file:line``, the
fields, an input without tweets) before the model loads; what needs the model (does it read images? are
the ``--images-dir`` images there?) right after loading, before tagging.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from comipn_prep.conll import Tweet, atomic_write_bytes, format_conll, read_conll, read_utf8_text, require_tweets
from comipn_prep.jsonl import json_lines
from comipn_prep.logs import progress_enabled

from comipn_model.inference.tagger import NO_IMAGE, Tagger, TaggedTweet

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
    matching_tower: str | None = None  # dynamic matching's DINO tower, if not the recorded one
    grounding: dict = field(default_factory=dict)  # overrides of the recorded grounding settings
    np_backend: str | None = None
    batch_size: int = 32
    device: str = "auto"
    precision: str = "auto"  # see Tagger.from_pretrained
    force: bool = False
    from_hub: bool = False  # a load_path that is no local path is a Hub repository id to download
    trust_detector: bool = False  # load the model's recorded detector even if it is a pickle (.pt)
    allow_empty: bool = False  # an input without tweets writes an empty output instead of exit 2
    allow_missing_images: bool = False  # CoNLL: tag although --images-dir holds none (or under half) of its images
    scores: bool = True  # each entity's span probability (JSONL "score"; False: null, a little faster)
    marginals: bool = False  # JSONL: each token's label probabilities ("marginals")
    # Each entity's region from the crops: "matching", "clip" or "largest"; "auto": matching when the model has
    # a region head, else none; None: no regions.
    linker: str | None = "auto"
    none_threshold: float | None = None  # below it an entity is "none" (None: the one saved with the model)


EMPTY_HINT = "pass --allow-empty if an empty input is expected (e.g. a shard that may hold no tweet)"


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
    image_value: str | None = None  # JSONL: "image" and "crops" as written, resolved once the model is known
    crop_values: list[str] | None = None
    image_missing: str | None = None  # CoNLL: the image looked up in --images-dir and not found


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
    for lineno, line in enumerate(read_utf8_text(path).splitlines(), start=1):
        if line.strip():
            rows.append(InputRow(id=str(lineno), line=lineno, text=line.strip()))
    return rows


def read_jsonl_rows(path: Path, images_dir: Path | None = None, with_images: bool | None = None) -> list[InputRow]:
    """The rows of a JSONL input, every line checked (``path:line``). ``with_images`` True resolves the
    image and crop paths (each must exist), False ignores them, None leaves them for
    :func:`resolve_jsonl_images` (once the model says whether it reads images)."""
    read_utf8_text(path)  # a byte that is not UTF-8 is named path:line here, before any JSON is parsed
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
        row.image_value, row.crop_values = image or None, crops
        rows.append(row)
    if with_images is not None:
        resolve_jsonl_images(rows, path, images_dir, with_images)
    return rows


def resolve_jsonl_images(rows: list[InputRow], path: Path, images_dir: Path | None, with_images: bool) -> None:
    """JSONL rows' image and crop paths (relative to ``images_dir`` or else the file's folder); each must
    exist. A text-only model reads no image: nothing is checked."""
    if not with_images:
        return
    base = images_dir or path.parent
    for row in rows:
        where = f"{path}:{row.line}"
        row.image = _image_path(row.image_value, base, where) if row.image_value else None
        row.crops = [_image_path(c, base, where) for c in row.crop_values] if row.crop_values is not None else None


def read_conll_rows(path: Path, opts: PredictOptions, tagger: Tagger, conll=None) -> tuple[list[InputRow], object]:
    """CoNLL tweets with their image (``--images-dir``) and prepared crops (``--aux-dict``): the same
    pairing as training's (missing files are masked); without an aux dict the images are grounded.
    ``conll``: the file already read (else it is read here). An ``--images-dir`` holding none (or under
    half) of the input's images is refused (:class:`~comipn_prep.image_coverage.MissingImagesError`)
    unless ``opts.allow_missing_images``."""
    from comipn_prep.image_coverage import check_images

    from comipn_prep.aux_dicts import load_aux_dict

    from comipn_model.data.examples import attach_images

    conll = conll if conll is not None else read_conll(path, labeled=None)
    config = tagger.config
    with_images = config.uses_images and opts.images_dir is not None
    images_dir = Path(opts.images_dir) if opts.images_dir else None
    if with_images:
        check_images(images_dir, str(path), [t.imgid for t in conll.tweets], allow_missing=opts.allow_missing_images)
    aux = load_aux_dict(Path(opts.aux_dict)) if opts.aux_dict else {}
    examples, _ = attach_images(conll.tweets, None, None, aux_k=config.aux_k, with_images=with_images,
                                images_dir=images_dir, aux=aux,
                                crops_dir=Path(opts.crops_dir) if opts.crops_dir else None)
    rows = []
    for tweet, ex in zip(conll.tweets, examples):
        row = InputRow(id=tweet.imgid, line=tweet.line, tokens=tweet.tokens,
                       gold=tweet.labels if tweet.raw_labels is not None else None)
        if with_images:
            row.image = ex.image_paths[0] if ex.image_paths else None
            row.crops = list(ex.image_paths[1:]) if opts.aux_dict else None
            if row.image is None:
                row.image_missing = f"missing: {tweet.image_name} not in {images_dir}"
        rows.append(row)
    return rows, conll


def read_input(source: Path, kind: str, opts: PredictOptions) -> tuple[list[InputRow], object]:
    """Read and check the whole input before any model loads: UTF-8 and JSON named ``file:line``, the
    JSONL fields, and an input without tweets (:class:`~comipn_prep.conll.EmptyInputError` unless
    ``opts.allow_empty``). Returns the rows (CoNLL: paired with images later) and the CoNLL file, if any."""
    conll = None
    if kind == "conll":
        conll = read_conll(source, labeled=None)
        rows = [InputRow(id=t.imgid, line=t.line, tokens=t.tokens) for t in conll.tweets]
    elif kind == "jsonl":
        rows = read_jsonl_rows(source)
    else:
        rows = read_text_rows(source)
    if opts.aux_dict and kind == "conll":
        from comipn_prep.aux_dicts import load_aux_dict

        load_aux_dict(Path(opts.aux_dict))  # missing or malformed: named now, not after the model loads
    if not opts.allow_empty:
        require_tweets(source, len(rows), f"{kind} input", EMPTY_HINT)
    return rows, conll


def grounds_on_the_fly(kind: str, rows: list[InputRow], opts: PredictOptions) -> bool:
    """Whether some tweet of the input has a picture without prepared crops (grounded on the fly, if the
    model reads images): then what the model names for grounding is checked before the model loads."""
    if kind == "conll":
        return opts.images_dir is not None and not opts.aux_dict
    return any(row.image_value and row.crop_values is None for row in rows)


def predict_file(opts: PredictOptions) -> int:
    """Tag ``opts.input`` into ``opts.out``; returns the number of tweets tagged."""
    fmt = output_format(opts)
    if opts.marginals and fmt != "jsonl":
        raise ValueError("--marginals needs JSONL output (--out ending .jsonl, or --format jsonl): CoNLL has no "
                         "room for them")
    if opts.none_threshold is not None and not opts.linker:  # "auto" is checked once the model is known
        raise ValueError("--none-threshold applies to a region linker: give --linker too")
    out = Path(opts.out)
    if out.exists() and not opts.force:
        raise FileExistsError(f"{out} exists: pass --force to overwrite it")
    source = Path(opts.input)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such input file")
    if opts.input_format not in INPUT_FORMATS:
        raise ValueError(f"unknown input format {opts.input_format!r}: choose {', '.join(INPUT_FORMATS)}")
    kind = detect_input_format(source) if opts.input_format == "auto" else opts.input_format
    rows, conll = read_input(source, kind, opts)  # bad or empty input is reported before any model loads
    feature_cache = opts.feature_cache
    if feature_cache is None and kind == "conll" and opts.images_dir:
        from comipn_model.network.vision import default_feature_cache

        feature_cache = str(default_feature_cache())
    overrides = {}
    if opts.none_threshold is not None:
        overrides["none_threshold"] = None if opts.none_threshold == float("-inf") else opts.none_threshold
    if opts.clip_pretrained is not None:
        overrides["clip_pretrained"] = None if opts.clip_pretrained.lower() in ("", "none") else opts.clip_pretrained
    tagger = Tagger.from_pretrained(opts.load_path, opts.device, text_model=opts.text_model,
                                    grounding=opts.grounding, np_backend=opts.np_backend,
                                    feature_cache=feature_cache, precision=opts.precision, progress=progress_enabled(),
                                    from_hub=opts.from_hub, trust_detector=opts.trust_detector,
                                    check_grounding=grounds_on_the_fly(kind, rows, opts),
                                    matching_tower=opts.matching_tower, linker=opts.linker, **overrides)
    # What needs the model (does it read images at all?), still before tagging.
    if kind == "conll":
        rows, conll = read_conll_rows(source, opts, tagger, conll)
    elif kind == "jsonl":
        resolve_jsonl_images(rows, source, Path(opts.images_dir) if opts.images_dir else None, tagger.uses_images)
    # CoNLL output has no room for scores: they are not computed for it
    results = tag_rows(tagger, rows, source, opts.batch_size, scores=opts.scores and fmt == "jsonl",
                       marginals=opts.marginals)
    unreadable = report_unused(rows, results) if tagger.uses_images else 0
    text = format_output(rows, results, fmt, conll, with_crops=tagger.uses_images)
    atomic_write_bytes(out, text.encode("utf-8"))
    log.info("tagged %d tweets of %s (%s) into %s (%s)%s", len(rows), source, kind, out, fmt,
             f"; {unreadable} unreadable image or crop files masked (not used)" if unreadable else "")
    return len(rows)


def report_unused(rows: list[InputRow], results: list[TaggedTweet]) -> int:
    """Say why a tweet's image was not used (CoNLL: missing from --images-dir) and warn once per
    unreadable file (a CoNLL output has no room for the marks); returns how many files were unreadable."""
    unreadable: dict[str, str] = {}
    for row, res in zip(rows, results):
        if not res.image_used and row.image_missing and res.image_reason in (None, NO_IMAGE):
            res.image_reason = row.image_missing
        if not res.image_used and row.image is not None and (res.image_reason or "").startswith("unreadable"):
            unreadable.setdefault(str(row.image), res.image_reason)
        for crop in res.crops:
            if crop.get("used") is False and str(crop.get("reason", "")).startswith("unreadable"):
                unreadable.setdefault(str(crop.get("file")), crop["reason"])
    for file, reason in unreadable.items():
        log.warning("%s: %s: masked, not used", file, reason)
    return len(unreadable)


def tag_rows(tagger: Tagger, rows: list[InputRow], source: Path, batch_size: int, *, scores: bool = True,
             marginals: bool = False) -> list[TaggedTweet]:
    """Tag rows in order; an image that cannot be decoded is reported with its input line."""
    from comipn_prep.images import ImageLoadError

    texts = [row.tokens if row.tokens is not None else row.text for row in rows]
    images = [row.image for row in rows]
    crops = [row.crops for row in rows]
    try:
        return tagger(texts, images if tagger.uses_images else None,
                      crops=crops if tagger.uses_images else None, batch_size=batch_size,
                      return_crop_images=False, scores=scores, marginals=marginals)
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
        item.update(text=res.text, tokens=res.tokens, tags=res.tags, entities=res.entities)
        if res.marginals is not None:
            item["marginals"] = res.marginals
        if row.gold is not None:
            item["gold"] = row.gold
        if with_crops:
            item["image"] = str(row.image) if row.image is not None else None
            item["image_used"] = bool(res.image_used)
            if not res.image_used:
                item["reason"] = res.image_reason or NO_IMAGE
            item["crops"] = res.crops
        lines.append(json.dumps(item, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)

