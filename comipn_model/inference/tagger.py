"""Tag raw tweets (and their pictures) in one call: ``Tagger.from_pretrained(path)(texts, images)``.

Behind the call, in memory and batched: the tweet tokenizer, noun phrases, YOLO + CLIP grounding into
crops (``comipn_prep.grounding.driver.Grounder``, with the settings recorded at training time unless
overridden), the frozen CLIP tower's features, and the model. Text-only models never load YOLO or
CLIP; models with images load them on first need only, so tagging with prepared crops never loads YOLO.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence, Union

import torch
from tqdm.auto import tqdm

from comipn_prep.conll import entity_spans
from comipn_prep.devices import resolve_device

from comipn_model.data.batch import WordBatcher
from comipn_model.data.features import ImageFeatures, stack_visual
from comipn_model.inference.entities import entities_of, joined, token_offsets
from comipn_model.inference.regions import NO_REGION_HEAD, TEXT_ONLY, box_area, link, pooled_scores
from comipn_model.network.config import CoMIPNConfig
from comipn_model.network.precision import autocast
from comipn_model.network.text_encoder import check_text_model_ref
from comipn_model.network.matching_tower import (MatchingFeatures, MatchingTower, MatchingTowers,
                                                  check_recorded_matching_tower, recordable)
from comipn_model.network.vision import FeatureCache, VisionTower
from comipn_model.saved.exported import CONFIG_NAME, write_exported
from comipn_model.saved.loaded import LoadedModel
from comipn_model.saved.loader import build_network, load_source
from comipn_model.saved.regions_record import LINKERS, read_regions

log = logging.getLogger(__name__)

ImageLike = Union[str, os.PathLike, "Image.Image", None]  # noqa: F821 - PIL is imported lazily
_UNSET: Any = object()
PRECISIONS = ("auto", "fp32", "bf16")
AMP_OF_PRECISION = {"auto": None, "fp32": False, "bf16": True}  # --precision as training's --amp
NO_IMAGE = "no image given"


@dataclass
class TaggedTweet:
    """One tweet's tags. ``entities``: ``entity_group``, ``score``, ``word``, ``start``/``end`` (characters
    of ``text``), ``token_start``/``token_end`` (:mod:`comipn_model.inference.entities`). ``text``: the
    input as given (for tokens given, the tokens joined by spaces); ``offsets``: each token's characters
    in it. ``marginals`` (when asked for): per token ``{label: P(label)}``, None for a word ``max_seq`` cut.
    ``crops``: what grounding chose (box, phrase, scores) or the prepared crop
    files, each with ``"used"`` (False, with a ``"reason"``, for a missing or unreadable file: masked);
    ``crop_images``: the crops themselves (PIL), when made in memory. ``image_used``: whether the tweet's
    image reached the model (None for a text-only model), ``image_reason`` why not."""

    tokens: list[str]
    tags: list[str]
    entities: list[dict]
    crops: list[dict] = field(default_factory=list)
    crop_images: list = field(default_factory=list, repr=False)
    image_used: bool | None = None
    image_reason: str | None = None  # "no image given", "missing: ...", "unreadable: <status>: <reason>"
    text: str = ""
    offsets: list[tuple[int, int]] = field(default_factory=list, repr=False)
    marginals: list[dict[str, float] | None] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        out = {"text": self.text, "tokens": self.tokens, "offsets": [list(o) for o in self.offsets],
               "tags": self.tags, "entities": self.entities, "crops": self.crops,
               "image_used": self.image_used, "image_reason": self.image_reason}
        if self.marginals is not None:
            out["marginals"] = self.marginals
        return out

    def to_doc(self, nlp):
        """This tweet as a spaCy ``Doc`` (``doc.text`` is :attr:`text`, ``doc.ents`` the entities);
        ``nlp``: any pipeline (``spacy.blank("en")``) or its ``Vocab``. See :mod:`comipn_model.inference.spacy_doc`."""
        from comipn_model.inference.spacy_doc import make_doc

        return make_doc(nlp, self.text, self.offsets, self.entities)


def recorded_in(loaded: LoadedModel, field_name: str) -> str:
    """Where a recorded setting was read from, for messages: the file and the field."""
    source = Path(loaded.source).absolute()
    if source.is_dir():
        return f"{source / CONFIG_NAME}, field {field_name}"
    prefix = "model_config" if field_name.startswith("model.") else "prep"
    return f"{source}, field {prefix}.{field_name.removeprefix('model.')}"


def grounding_config_of(loaded: LoadedModel, overrides: dict, device: str):
    """The GroundConfig for raw images: the training's record, then the caller's ``overrides``."""
    from comipn_prep.grounding.driver import GroundConfig

    known = {f.name for f in fields(GroundConfig)}
    recorded = dict(loaded.prep.get("grounding") or {})
    if not recorded:
        # Crops made outside comipn-prep: the model's own CLIP and the default detector.
        recorded = {"clip_model": loaded.config.clip_model, "clip_pretrained": loaded.config.clip_pretrained}
    values = {k: v for k, v in {**recorded, **overrides}.items() if k in known}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown grounding settings {unknown}: use fields of GroundConfig")
    values["device"] = device
    return GroundConfig(**values)


def check_recorded_tower_clip(loaded: LoadedModel) -> None:
    """The vision tower's recorded CLIP weights may be loaded as recorded (UntrustedWeights if not)."""
    from comipn_prep.weights import check_recorded_clip

    check_recorded_clip(loaded.config.clip_model, loaded.config.clip_pretrained,
                        recorded_in(loaded, "model.clip_pretrained"), "--clip-pretrained (Tagger: clip_pretrained=)")


def check_grounding_sources(loaded: LoadedModel, overrides: dict, trust_detector: bool, device: str = "cpu"):
    """``(GroundConfig, where its detector was recorded)`` for grounding raw images, after every check
    loading would make of what the model's files name (:class:`~comipn_prep.weights.UntrustedWeights`);
    loads nothing. The place is None where the caller named the detector or trusts the model's maker."""
    from comipn_prep.weights import check_recorded_clip, check_recorded_detector

    config = grounding_config_of(loaded, overrides, device)
    recorded = dict(loaded.prep.get("grounding") or {})
    detector_in = None
    if "detector" not in overrides and not trust_detector:
        detector_in = (recorded_in(loaded, "grounding.detector") if "detector" in recorded else
                       f"{loaded.source} (no grounding recorded: comipn's default detector)")
        check_recorded_detector(config.detector, detector_in, "--detector",
                                "--trust-detector (Python: Tagger.from_pretrained(..., trust_detector=True))")
    if "clip_pretrained" not in overrides:
        where = (recorded_in(loaded, "grounding.clip_pretrained") if "clip_pretrained" in recorded
                 else recorded_in(loaded, "model.clip_pretrained"))
        check_recorded_clip(config.clip_model, config.clip_pretrained, where,
                            "--ground-clip-pretrained (Tagger: grounding={'clip_pretrained': ...})")
    return config, detector_in


def batch_order(lengths: Sequence[int]) -> list[int]:
    """Tweet indices sorted by sub-token count (stable), so a batch pads little: the encoder's work
    is sub-tokens, and word counts order them poorly (on the Twitter-2017 test split, batches of 32
    sorted by words are 35% longer, padding included, than sorted by sub-tokens)."""
    return sorted(range(len(lengths)), key=lengths.__getitem__)


@dataclass
class _Item:
    index: int
    tokens: list[str]
    text: str = ""
    offsets: list = field(default_factory=list)
    image: Any = None  # path, PIL image or None
    crops: list | None = None  # prepared crops (paths / PIL); None: ground when there is an image


def _is_pil(value) -> bool:
    return hasattr(value, "size") and hasattr(value, "convert") and hasattr(value, "mode")


AUTO = "auto"  # the default linker: matching when the model has a region head, else none


class Tagger:
    """A loaded Co-MIPN model that tags tweets; see :meth:`from_pretrained` and :meth:`__call__`."""

    def __init__(self, model, loaded: LoadedModel, device: torch.device, *, clip_pretrained: Any = _UNSET,
                 grounding: dict | None = None, np_backend: str | None = None,
                 feature_cache: str | os.PathLike | None = None, precision: str = "auto", progress: bool = False,
                 trust_detector: bool = False, linker: str | None = AUTO, none_threshold: Any = _UNSET):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model = model
        self.precision = precision
        self.config: CoMIPNConfig = model.config
        self.device = device
        self.source = loaded.source
        self.meta = loaded.meta
        self.prep = loaded.prep
        self.clip_pretrained = self.config.clip_pretrained if clip_pretrained is _UNSET else clip_pretrained
        self._clip_recorded = clip_pretrained is _UNSET  # read from the model's files, not given by the caller
        self.grounding_overrides = dict(grounding or {})
        self.trust_detector = trust_detector
        self.np_backend_name = np_backend or loaded.prep.get("np_backend") or "auto"
        self.feature_cache_dir = Path(feature_cache) if feature_cache else None
        self.progress = progress
        self.batcher = WordBatcher(model.tokenizer, self.config.labels, self.config.max_seq)
        self._loaded = loaded
        self._tower = self._cache = self._grounder = self._np_backend = None
        self._clip_matcher = None
        self._crop_boxes: dict[Path, dict] = {}
        self.linker, self.none_threshold = self._linker_settings(linker, none_threshold)
        # "auto" with no linker to use: every entity still gets a null box and why (issue 26); None = none.
        self.no_region_reason = (None if self.linker is not None or linker != AUTO else
                                 NO_REGION_HEAD if self.uses_images else TEXT_ONLY)

    def _linker_settings(self, linker: str | None, none_threshold: Any) -> tuple[str | None, float | None]:
        """The region linker asked for and its "none" threshold: the one given, else the one saved with the
        model for that linker (``regions.json``), else None (the best crop always). ``auto``: ``matching``
        when the model has a region head (trained with a region weight), else no regions."""
        if linker == AUTO:
            linker = "matching" if getattr(self.model, "region_head", None) is not None else None
            if linker is None and none_threshold is not _UNSET and none_threshold is not None:
                raise ValueError(f"a none threshold applies to a region linker, and {self.source} has no region head "
                                 f"(linker 'auto' gives no regions): name a linker")
        if linker is None:
            return None, None
        if linker not in LINKERS:
            raise ValueError(f"unknown linker {linker!r}: choose {', '.join(LINKERS)}")
        if not self.uses_images:
            raise ValueError(f"linker {linker!r}: {self.source} is a text-only model; it reads no picture")
        if linker == "matching" and not self.config.use_dynamic_matching:
            raise ValueError(f"linker 'matching' reads dynamic matching's relevance, and {self.source} was trained "
                             "without it: use linker 'clip'")
        if none_threshold is _UNSET:
            saved = read_regions(self.source) if Path(self.source).exists() else None
            none_threshold = saved["none_threshold"] if saved and saved["linker"] == linker else None
            if saved and saved["linker"] == linker:
                log.info("regions: linker %s, none threshold %s (saved with the model)", linker, none_threshold)
        return linker, none_threshold

    # -- loading --------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str = "auto", *, text_model: str | None = None,
                        clip_pretrained: Any = _UNSET, grounding: dict | None = None,
                        np_backend: str | None = None, feature_cache: str | os.PathLike | None = None,
                        precision: str = "auto", progress: bool = False, from_hub: bool = False,
                        trust_detector: bool = False, check_grounding: bool = False,
                        matching_tower: str | None = None, linker: str | None = AUTO,
                        none_threshold: Any = _UNSET) -> "Tagger":
        """Load a run folder, a ``best.pt``, an exported folder or a Hub repository id.

        ``text_model``: the encoder's folder (config + tokenizer) when a checkpoint's has moved.
        ``clip_pretrained``: the vision tower's weights, if not the training's (a file, or None: random).
        ``grounding``: overrides of the recorded grounding settings (``detector``, ``clip_model``,
        ``clip_pretrained``, ``conf``, ``top_k``, ... of :class:`comipn_prep.grounding.driver.GroundConfig`).
        ``feature_cache``: a folder caching the tower's features of image *files* (crops made in memory
        are not cached). ``precision``: ``auto`` (bf16 autocast on CUDA, fp32 on CPU: as training's
        evaluation, the same tags as its test predictions), ``fp32``, or ``bf16`` (the model under bf16
        autocast on a CPU too: about 1.8x faster where the CPU has bf16 instructions, and a few tags may
        differ from fp32; grounding and the CLIP tower stay fp32: bf16 made ViT-B/32 3x slower here).
        ``from_hub``: read a ``path`` that is no local file or folder as a Hugging Face Hub repository id
        (``owner/name``) and download it; without it such a ``path`` is an error.

        What is recorded in the model (its grounding detector and CLIP weights) is never loaded in a way
        that can run code: the recorded detector loads only when it is one of ultralytics' own model names
        (an architecture yaml shipped with it, or its released weights by bare name, from its weights
        folder); any other (a ``.pt`` is a pickle) raises UntrustedWeights, unless the caller names the
        detector (``grounding={"detector": ...}``) or trusts the model's maker (``trust_detector=True``).
        Recorded CLIP weights are read with ``torch.load(weights_only=True)`` or safetensors by open_clip,
        and a recorded relative or ``~`` path is refused rather than looked up from the current folder.
        The text encoder loads with ``trust_remote_code=False``. ``check_grounding``: make those checks
        now, before the network is built, rather than at the first raw image (predict sets it when its
        input has pictures to ground). ``matching_tower``: dynamic matching's DINO tower (Hub name or
        folder) if not the one recorded; a recorded one is refused when it is a relative or ``~`` path.
        ``linker``: give each entity a region (``box``, ``box_score``, ``box_reason``) from the tweet's crops,
        by ``"matching"`` (the model's own word-to-crop relevance: its region head's when it has one) or
        ``"clip"`` (CLIP's "a photo of <entity>" against each crop); ``"auto"`` (the default): ``matching``
        when the model has a region head, else no regions; None: no regions. ``none_threshold``: below it an
        entity is "none" (default: the threshold saved for that linker with the model, ``regions.json``, else
        never none). See
        :mod:`comipn_model.inference.regions`."""
        if text_model:
            check_text_model_ref(text_model, "--text-model (Tagger: text_model=)")  # before any loading
        loaded = load_source(path, from_hub=from_hub)
        if text_model:
            loaded.config.text_model = text_model
        if matching_tower:
            loaded.config.matching_tower = recordable(matching_tower)
        elif loaded.config.tower_matching:  # its config.json is read to build the network
            check_recorded_matching_tower(loaded.config.matching_tower, recorded_in(loaded, "model.matching_tower"),
                                          "--matching-tower (Tagger: matching_tower=)")
        dev = resolve_device(device)
        if check_grounding and loaded.config.uses_images:
            # Before the network is built (the slow part): a refused recorded detector is said at once.
            if clip_pretrained is _UNSET:
                check_recorded_tower_clip(loaded)
            check_grounding_sources(loaded, dict(grounding or {}), trust_detector, str(dev))
        model = build_network(loaded, dev)
        return cls(model, loaded, dev, clip_pretrained=clip_pretrained, grounding=grounding,
                   np_backend=np_backend, feature_cache=feature_cache, precision=precision, progress=progress,
                   trust_detector=trust_detector, linker=linker, none_threshold=none_threshold)

    @property
    def uses_images(self) -> bool:
        return self.config.uses_images

    def grounding_config(self):
        """The GroundConfig used for raw images: the training's record, then the overrides."""
        return grounding_config_of(self._loaded, self.grounding_overrides, str(self.device))

    def _vision(self):
        if self._tower is None:
            if self._clip_recorded:
                check_recorded_tower_clip(self._loaded)

            # Random tower weights (clip_pretrained None) from a fixed seed, as the grounder's: the same
            # model on every load, and the caller's random numbers untouched.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self._tower = VisionTower(self.config.clip_model, self.clip_pretrained, device=str(self.device),
                                          flag="clip_pretrained= (Tagger) / --clip-pretrained")
            if self.feature_cache_dir is not None:
                self._cache = FeatureCache(self.feature_cache_dir, self._tower, progress=self.progress)
            if self.config.tower_matching:  # matching's patches from the DINO tower, CLIP's class tokens
                tower = MatchingTower(self.config.matching_tower, device=str(self.device),
                                      flag="matching_tower= (Tagger) / --matching-tower")
                if self._cache is not None:
                    self._cache = MatchingFeatures(self._cache, FeatureCache(self.feature_cache_dir, tower,
                                                                             progress=self.progress))
                self._tower = MatchingTowers(self._tower, tower)
        return self._tower

    def _ground(self):
        if self._grounder is None:
            from comipn_prep.grounding.driver import Grounder

            from comipn_prep.weights import WeightsUnavailable

            # What the model's files name is checked first (UntrustedWeights says what to pass instead).
            config, detector_in = check_grounding_sources(self._loaded, self.grounding_overrides,
                                                          self.trust_detector, str(self.device))
            try:
                self._grounder = Grounder.from_config(config, detector_recorded_in=detector_in,
                                                      trust_flag="--trust-detector")
            except WeightsUnavailable as err:
                raise WeightsUnavailable(f"{err} [Tagger: grounding={{'detector': ..., 'clip_pretrained': ...}}; "
                                         f"predict: --detector / --ground-clip-pretrained]") from None
        return self._grounder

    def _nps(self):
        if self._np_backend is None:
            from comipn_prep.nps.extract import get_backend

            self._np_backend = get_backend(self.np_backend_name)
        return self._np_backend

    # -- tagging --------------------------------------------------------------------------------------
    def __call__(self, texts: Sequence[str | Sequence[str]], images: Sequence[ImageLike] | None = None, *,
                 crops: Sequence[Sequence[ImageLike] | None] | None = None, batch_size: int = 32,
                 return_crop_images: bool = True, scores: bool = True, marginals: bool = False) -> list[TaggedTweet]:
        """Tag tweets: raw strings (tokenised like the Twitter datasets) or token lists.

        ``images``: per tweet a path, a PIL image or None. ``crops``: per tweet its prepared crops
        (paths / PIL) or None to ground the image on the fly. Both are ignored by text-only models.
        ``return_crop_images=False`` drops the crops' pixels from the results (long inputs: memory).
        ``scores``: each entity's exact span probability (``False``: ``"score": None``, a little faster);
        ``marginals``: each token's label probabilities too. Results come back in input order."""
        from comipn_prep.nps.tokenize import tokenize_tweet

        if isinstance(texts, (str, bytes)):
            raise TypeError("pass a list of tweets (a single string would be read as one tweet per character)")
        n = len(texts)
        for name, seq in (("images", images), ("crops", crops)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{len(seq)} {name} for {n} tweets: give one per tweet (None where there is none)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if images is not None and self.uses_images:
            for i, image in enumerate(images):
                if image is not None and not _is_pil(image) and not Path(image).is_file():
                    raise FileNotFoundError(f"image {image} (tweet {i + 1}): no such file")
        items = []
        for i, text in enumerate(texts):
            if isinstance(text, str):
                tokens = tokenize_tweet(text)
                item = _Item(i, tokens, text, token_offsets(text, tokens))
            else:
                tokens = [str(t) for t in text]
                item = _Item(i, tokens, *joined(tokens))
            if self.uses_images:
                item.image = images[i] if images is not None else None
                item.crops = list(crops[i]) if crops is not None and crops[i] is not None else None
            items.append(item)
        return self._tag(items, batch_size, return_crop_images, scores, marginals)

    def to_spacy(self, nlp, texts: Sequence[str | Sequence[str]], images: Sequence[ImageLike] | None = None,
                 **options) -> list:
        """Tag ``texts`` (as :meth:`__call__`, with ``options``) and return one spaCy ``Doc`` per tweet,
        ``doc.ents`` set: :meth:`TaggedTweet.to_doc`."""
        return [result.to_doc(nlp) for result in self(texts, images, **options)]

    def _tag(self, items: Sequence[_Item], batch_size: int, keep_pixels: bool = True, scores: bool = True,
             marginals: bool = False) -> list[TaggedTweet]:
        results: list[TaggedTweet | None] = [None] * len(items)
        for item in items:
            if not item.tokens:
                results[item.index] = TaggedTweet([], [], [], image_used=False if self.uses_images else None,
                                                  image_reason="no token to tag" if self.uses_images else None,
                                                  text=item.text, marginals=[] if marginals else None)
        todo = [it for it in items if it.tokens]
        tokenised = self.batcher.tokenise([it.tokens for it in todo])  # once, for every batch
        order = batch_order([len(t.input_ids) for t in tokenised])
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="tag", unit="batch", leave=False,
                          disable=not self.progress or len(starts) < 2):
            picked = order[start:start + batch_size]
            batch = [todo[i] for i in picked]
            visual, crop_info, crop_images, marks, crop_sources = self._visual(batch)
            encoded = self.batcher.collate([tokenised[i] for i in picked], visual=visual).to(self.device)
            with torch.inference_mode(), self._autocast():
                if self.linker == "matching":  # one forward for both where a region head reads the states
                    emissions, relevance = self.model.emissions_and_relevance(encoded)
                else:
                    emissions, relevance = self.model.emissions(encoded), None
                tags = self.model.decode(encoded, emissions)
            span_scores, token_probs = self._probabilities(emissions, encoded.word_mask, tags, scores, marginals)
            for k, (it, row) in enumerate(zip(batch, tags)):
                entities = entities_of(it.text, it.offsets, row, span_scores[k])
                if self.linker is not None:
                    self._link(entities, crop_info[k], crop_sources[k],
                               None if relevance is None else relevance[k].tolist())
                elif self.no_region_reason is not None:
                    for entity in entities:
                        entity.update(box=None, box_score=None, box_linker=None, box_reason=self.no_region_reason)
                results[it.index] = TaggedTweet(
                    it.tokens, row, entities, crop_info[k],
                    crop_images[k] if keep_pixels else [], *marks[k], text=it.text, offsets=it.offsets,
                    marginals=token_probs[k])
        return results  # type: ignore[return-value]

    def _probabilities(self, emissions: torch.Tensor, word_mask: torch.Tensor, tags: list[list[str]],
                       scores: bool, marginals: bool) -> tuple[list, list]:
        """Per tweet of a batch, its entities' span probabilities and its tokens' marginals (None where
        not asked for), from one forward-backward pass of the CRF (fp64: fp32 leaves sums 1e-5 off 1)."""
        rows = len(tags)
        if not (scores or marginals):
            return [None] * rows, [None] * rows
        crf = self.model.crf
        emissions = emissions.double()
        with torch.inference_mode(), torch.autocast(emissions.device.type, enabled=False):
            tables = crf.forward_backward(emissions, word_mask)
            span_scores: list = [None] * rows
            if scores:
                spans = [(b, first, stop, kind) for b, row in enumerate(tags)
                         for kind, first, stop in entity_spans(row)]
                logp = crf.span_log_probs(emissions, word_mask, spans, tables).tolist()
                span_scores = [[] for _ in range(rows)]
                for (b, *_), value in zip(spans, logp):
                    span_scores[b].append(min(1.0, math.exp(value)))
            token_probs: list = [None] * rows
            if marginals:
                probs = crf.marginals(emissions, word_mask, tables).cpu().tolist()
                lengths = (tables.lengths * tables.rows).tolist()
                labels = self.config.labels
                token_probs = [[dict(zip(labels, probs[b][w])) if w < lengths[b] else None for w in range(len(row))]
                               for b, row in enumerate(tags)]
        return span_scores, token_probs

    def _autocast(self):
        # auto: bf16 on CUDA only, as training's evaluation runs (the same tags as its test predictions).
        return autocast(self.device, AMP_OF_PRECISION[self.precision])

    # -- the visual side ------------------------------------------------------------------------------
    def _visual(self, batch: Sequence[_Item]):
        """The batch's visual inputs, each tweet's crop entries and crop pixels, and per tweet
        ``(image_used, reason)``: a missing or unreadable file is masked and said so, never passed as used."""
        empty: list[list] = [[] for _ in batch]
        if not self.uses_images:
            return None, [[] for _ in batch], empty, [(None, None)] * len(batch), empty
        if all(it.image is None and not it.crops for it in batch):
            return None, [[] for _ in batch], empty, [(False, NO_IMAGE)] * len(batch), empty
        from comipn_prep.images import load_image


        k = self.config.aux_k
        self._vision()  # the tower (and feature cache) first: a bad --clip-pretrained fails before grounding
        pictures: list[Any] = []  # what the tower reads: a file (cached when there is a cache) or PIL image
        decoded: list[Any] = []  # what grounding reads: the decoded picture
        to_ground = []
        for it in batch:
            picture = it.image
            if it.crops is None and picture is not None and k > 0:
                to_ground.append(len(pictures))
                decoded.append(picture if _is_pil(picture) else load_image(picture))
                if self._cache is None:
                    picture = decoded[-1]  # decoded once, for both
            pictures.append(picture)
        crop_sources: list[list] = [list(it.crops or [])[:k] for it in batch]
        crop_info: list[list[dict]] = [[{"file": None if c is None else "<image>" if _is_pil(c) else str(c)}
                                        for c in cs] for cs in crop_sources]
        if self.linker is not None:  # a prepared crop's box: its row of grounding's manifest.csv, if any
            for cs, info in zip(crop_sources, crop_info):
                for c, entry in zip(cs, info):
                    entry["box"] = self._prepared_box(c)
        crop_images: list[list] = [[c for c in cs if _is_pil(c)] for cs in crop_sources]
        if to_ground:
            grounded = self._ground_images([batch[j] for j in to_ground], decoded)
            for j, result in zip(to_ground, grounded):
                kept = list(zip(result.selected, result.crops))[:k]
                crop_sources[j] = [crop for _, crop in kept]
                crop_images[j] = [crop for _, crop in kept]
                crop_info[j] = [{"rank": s.rank, "box": list(s.box), "phrase": s.phrase,
                                 "clip_score": None if s.clip_score != s.clip_score else round(s.clip_score, 6),
                                 "det_score": round(s.det_score, 6)} for s, _ in kept]
        flat = [src for pic, cs in zip(pictures, crop_sources) for src in [pic, *cs]]
        reasons: dict[int, str] = {}
        feats = self._features(flat, reasons)
        per_example, marks, at = [], [], 0
        for pic, cs, info in zip(pictures, crop_sources, crop_info):
            row = feats[at:at + 1 + len(cs)]
            per_example.append(row)
            marks.append((True, None) if row[0] is not None else
                         (False, NO_IMAGE if pic is None else reasons.get(at, "unreadable")))
            for c, (src, feat, entry) in enumerate(zip(cs, row[1:], info), start=1):
                entry["used"] = feat is not None
                if feat is None:
                    entry["reason"] = "missing" if src is None else reasons.get(at + c, "unreadable")
            at += 1 + len(cs)
        return (stack_visual(per_example, num_images=self.config.num_images), crop_info, crop_images, marks,
                crop_sources)

    # -- regions --------------------------------------------------------------------------------------
    def _prepared_box(self, crop) -> list | None:
        """A crop file's box in its original image, from the manifest of the split folder above its crops
        folder (``<aux>/<split>/manifest.csv``, as comipn-prep ground writes it); None for a crop without one."""
        if crop is None or _is_pil(crop):
            return None
        from comipn_prep.grounding.manifest import crop_boxes

        split_dir = Path(crop).parent.parent
        if split_dir not in self._crop_boxes:
            self._crop_boxes[split_dir] = crop_boxes(split_dir)
        box = self._crop_boxes[split_dir].get(Path(crop).name)
        return None if box is None else list(box)

    def _link(self, entities: list[dict], crops: list[dict], sources: list, relevance: list | None) -> None:
        """Give each entity its region (see :mod:`comipn_model.inference.regions`), in place."""
        if not entities:
            return
        if self.linker == "matching":
            # relevance[w]: image 0 (the picture) then the crops, in the order of ``crops``
            rows = [r[1:1 + len(crops)] for r in relevance] if relevance is not None else []
            scores = [pooled_scores(rows, e["token_start"], e["token_end"]) if rows else [0.0] * len(crops)
                      for e in entities]
        elif self.linker == "largest":
            scores = [[box_area(c.get("box")) for c in crops]] * len(entities)
        else:
            scores = self._clip_scores([e["word"] for e in entities], crops, sources)
        for entity, entity_scores in zip(entities, scores):
            entity.update(link(entity_scores, crops, self.none_threshold), box_linker=self.linker)

    def _clip_scores(self, phrases: list[str], crops: list[dict], sources: list) -> list[list[float]]:
        """CLIP's cosine between the grounding prompt of each phrase and each usable crop with a box (the
        grounding's CLIP model; -inf for the other crops, which are no candidates)."""
        from comipn_prep.images import load_image

        usable = [i for i, c in enumerate(crops) if c.get("box") is not None and c.get("used", True)]
        if not usable:
            return [[-math.inf] * len(crops) for _ in phrases]
        matcher = self._clip()
        pictures = [sources[i] if _is_pil(sources[i]) else load_image(sources[i]) for i in usable]
        sims = matcher.encode_phrases(phrases) @ matcher.encode_crops(pictures).T
        out = []
        for row in sims.tolist():
            scores = [-math.inf] * len(crops)
            for i, value in zip(usable, row):
                scores[i] = value
            out.append(scores)
        return out

    def _clip(self):
        """The grounding's CLIP model (the recorded one, after the same checks as grounding's), loaded once."""
        if self._clip_matcher is None:
            from comipn_prep.grounding.clip_matcher import ClipMatcher
            from comipn_prep.weights import load_clip

            config, _ = check_grounding_sources(self._loaded, self.grounding_overrides, True, str(self.device))
            with torch.random.fork_rng(devices=[]):  # random weights (tests): the same model on every load
                torch.manual_seed(0)
                bundle = load_clip(config.clip_model, config.clip_pretrained, device=str(self.device),
                                   flag="--ground-clip-pretrained")
            self._clip_matcher = ClipMatcher(bundle, device=str(self.device), prompt=config.prompt)
        return self._clip_matcher

    def _ground_images(self, items: Sequence[_Item], pictures: Sequence) -> list:
        from comipn_prep.grounding.driver import Loaded
        from comipn_prep.grounding.nps_input import GroundItem
        from comipn_prep.nps.extract import extract_batch

        grounder = self._ground()
        nps = extract_batch(self._nps(), [(str(it.index), it.tokens) for it in items])
        loaded = []
        for it, tweet_nps, picture in zip(items, nps, pictures):
            phrases = list(dict.fromkeys(p.text.strip() for p in tweet_nps.nps if p.text.strip()))
            loaded.append(Loaded(GroundItem(str(it.index), phrases), picture))
        size = max(1, grounder.config.batch_size)
        results = []
        for start in range(0, len(loaded), size):
            results += grounder.ground_batch(loaded[start:start + size])
        return results

    def _features(self, sources: Sequence, reasons: dict[int, str] | None = None) -> list:
        """Tower features per image source (None -> None); files through the feature cache when one is
        set. Features are rounded to fp16 as the cache stores them, so both paths give the same tags.
        The cache masks a file it cannot decode (None): ``reasons`` gets why, by position."""
        from comipn_prep.images import ImageLoadError, load_image


        tower = self._vision()
        out: list = [None] * len(sources)
        files = [i for i, s in enumerate(sources) if s is not None and not _is_pil(s)]
        if self._cache is not None and files:
            for i, feats in zip(files, self._cache.get_many([sources[i] for i in files])):
                out[i] = feats
                if feats is None and reasons is not None:
                    try:  # decoded again only to say why: the cache logs and masks
                        load_image(sources[i])
                        reasons[i] = "unreadable"
                    except ImageLoadError as err:
                        reasons[i] = (f"missing: {err.path}" if err.status == "missing" else
                                      f"unreadable: {err.status}: {err.reason}")
            pending = [i for i, s in enumerate(sources) if _is_pil(s)]
        else:
            pending = [i for i, s in enumerate(sources) if s is not None]
        images = [sources[i] if _is_pil(sources[i]) else load_image(sources[i]) for i in pending]
        chunk = 32
        for start in range(0, len(images), chunk):
            for i, f in zip(pending[start:start + chunk], tower(images[start:start + chunk])):
                out[i] = ImageFeatures(cls=f.cls.half().float(), patches=f.patches.half().float())
        return out

    # -- saving ---------------------------------------------------------------------------------------
    def save_pretrained(self, out_dir: str | os.PathLike, *, force: bool = False, license: str | None = None) -> Path:
        """Write this model as an exported folder (config.json, model.safetensors, text_encoder/, README.md);
        ``license``: the model card's (a Hub license id)."""
        return write_exported(self.model, self._loaded, out_dir, force=force, license=license)

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    commit_message: str = "Upload comipn tagger") -> str:
        """Export to a temporary folder and upload it as the Hub repository ``repo_id`` (needs a network)."""
        import tempfile

        from huggingface_hub import HfApi

        api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model")
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
        return str(info)

    def __repr__(self) -> str:
        switches = [n for n in ("use_prompt", "use_dynamic_matching", "use_contrastive") if getattr(self.config, n)]
        return (f"Tagger({self.source}, device={self.device}, labels={len(self.config.labels)}, "
                f"switches={switches or 'text-only'})")


def as_dict(result: TaggedTweet) -> dict:
    return asdict(result)
