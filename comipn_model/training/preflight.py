"""Checks that run before any model is loaded: the data (with a hint at the likely fix), the images,
the weights, and the tracker. A run that would fail fails here, in seconds, and writes nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from comipn_prep.aux_dicts import load_aux_dict
from comipn_prep.conll import Tweet
from comipn_prep.fingerprints import fingerprint
from comipn_prep.layout import SPLITS, DatasetLayout

from comipn_model.network.matching_tower import check_matching_tower
from comipn_model.network.text_encoder import check_text_encoder
from comipn_model.data.examples import Example, ImageCounts, attach_images, read_split, subsample
from comipn_model.data.region_targets import attach_region_targets, check_region_sources, xml_dir
from comipn_model.training.config import TrainConfig

log = logging.getLogger(__name__)

# HVPNeT's scripts name the datasets twitter15 / twitter17; their folders are twitter2015 / twitter2017.
DATASET_ALIASES = {"twitter15": "twitter2015", "twitter17": "twitter2017", "twitter-2015": "twitter2015",
                   "twitter-2017": "twitter2017"}


@dataclass
class RunData:
    """The three splits, images attached, and what was found of their images."""

    layout: DatasetLayout
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    counts: dict[str, ImageCounts]
    files: dict  # sha256 and known version of each split and aux dict read (comipn_prep.fingerprints)


# -- data -------------------------------------------------------------------------------------------
def dataset_folders(root: Path) -> list[str]:
    """Names of the folders under ``root`` that hold a train split."""
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if d.is_dir() and (d / "train.txt").is_file())


def layout_hint(root: Path, dataset: str) -> str:
    """The likely fix for a dataset that is not under ``root``: another --dataset, or --data-root one
    level lower / higher, or the datasets that do exist there."""
    alias = DATASET_ALIASES.get(dataset.lower())
    if alias and (root / alias / "train.txt").is_file():
        return f"did you mean --dataset {alias}? (HVPNeT calls it {dataset}; its folder is {alias})"
    if root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            for name in (dataset, alias):
                if name and (sub / name / "train.txt").is_file():
                    extra = f" --dataset {name}" if name != dataset else ""
                    return f"did you mean --data-root {sub}{extra}?"
    if root.name == dataset and (root / "train.txt").is_file():
        return f"did you mean --data-root {root.parent}? (--data-root is the folder above {dataset}/)"
    found = dataset_folders(root)
    if found:
        return f"datasets under {root}: {', '.join(found)}"
    return f"no dataset folder (<name>/train.txt) under {root}"


def check_layout(data_root: str | Path, dataset: str) -> DatasetLayout:
    """The dataset's layout when its three splits are there; else FileNotFoundError with a hint."""
    root = Path(data_root)
    if not root.is_dir():
        parent_hint = ""
        if root.parent.is_dir() and dataset_folders(root.parent):
            parent_hint = f"; datasets under {root.parent}: {', '.join(dataset_folders(root.parent))}"
        raise FileNotFoundError(f"--data-root {root} is not a folder{parent_hint}")
    layout = DatasetLayout(root, dataset)
    for split in SPLITS:
        path = layout.text_path(split)
        if not path.is_file():
            hint = layout_hint(root, dataset) if split == "train" else \
                f"{layout.text_dir} holds {', '.join(sorted(p.name for p in layout.text_dir.glob('*.txt'))) or 'no .txt file'}"
            raise FileNotFoundError(f"{path}: the {split} split of {dataset!r} is not there; {hint}")
    return layout


def check_entities(tweets: list[Tweet], path: Path, sampled: bool) -> None:
    if not any(label != "O" for t in tweets for label in (t.labels or [])):
        after = " among the tweets --sample-ratio kept" if sampled else ""
        raise ValueError(f"{path}: no entity label in the train split{after} (every tag is O): nothing to learn")


def load_run_data(cfg: TrainConfig) -> RunData:
    """Read and check the three splits (and the images, when the model uses them)."""
    layout = check_layout(cfg.data_root, cfg.dataset)
    if cfg.model.region_head:
        check_region_sources(layout, "train")
    elif cfg.model.region_weight > 0:
        log.warning("--region-weight %g: no region head without dynamic matching and crops (--aux-k > 0); "
                    "the region loss is off", cfg.model.region_weight)
    tweets = {split: read_split(layout, split) for split in SPLITS}
    with_images = cfg.model.uses_images
    files = fingerprint({split: layout.text_path(split) for split in SPLITS},
                        {split: layout.dict_path(split) for split in SPLITS} if with_images else None, tweets)
    for warning in files["warnings"]:
        log.warning("%s: %s", layout.text_dir, warning)
    tweets["train"] = subsample(tweets["train"], cfg.sample_ratio, cfg.seed)
    check_entities(tweets["train"], layout.text_path("train"), cfg.sample_ratio < 1)
    aux: dict[str, dict[str, list[str]]] = {}
    if with_images:
        from comipn_prep.image_coverage import check_dict_keys, check_split_images

        for split, split_tweets in tweets.items():
            ids = [t.imgid for t in split_tweets]
            check_split_images(layout, split, ids, allow_missing=cfg.allow_missing_images)
            aux[split] = load_aux_dict(layout.dict_path(split), missing_ok=True)
            if cfg.model.aux_k > 0 and layout.dict_path(split).is_file():
                check_dict_keys(layout.dict_path(split), aux[split], ids, allow_missing=cfg.allow_missing_images)
    examples, counts = {}, {}
    for split, split_tweets in tweets.items():
        examples[split], counts[split] = attach_images(split_tweets, layout, split, aux_k=cfg.model.aux_k,
                                                       with_images=with_images, aux=aux.get(split), warn=False)
    if cfg.model.region_head:
        found = attach_region_targets(examples["train"], layout, "train")
        log.info("region loss: gold boxes of %d of %d training tweets (%s)", found, len(examples["train"]),
                 xml_dir(layout))
        if not found:
            raise FileNotFoundError(f"{xml_dir(layout)}: no <imgid>.xml of a training tweet; the region loss "
                                    f"(--region-weight) has nothing to train on")
    return RunData(layout, examples["train"], examples["valid"], examples["test"], counts, files)


# -- weights ----------------------------------------------------------------------------------------
def check_clip(model_name: str, pretrained: str | None, flag: str = "--clip-pretrained") -> None:
    """The CLIP model is known to open_clip and its weights are a local file, 'none', or a tag that can
    be had (cached, or online), without building it."""
    import open_clip

    from comipn_prep.model_refs import hub_offline
    from comipn_prep.weights import WeightsUnavailable, _in_hf_cache, _is_random_spec, _looks_like_path

    if model_name not in open_clip.list_models():
        raise WeightsUnavailable(f"unknown CLIP model {model_name!r} (open_clip knows e.g. ViT-B-32, ViT-B-16); "
                                 f"pass another --clip-model")
    if _is_random_spec(pretrained) or Path(str(pretrained)).expanduser().is_file():
        return
    if _looks_like_path(str(pretrained)):
        raise WeightsUnavailable(f"CLIP weights file {pretrained} does not exist; pass a local weights file with "
                                 f"{flag} (or {flag} none for random weights)")
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        raise WeightsUnavailable(f"{pretrained!r} is neither a local file nor an open_clip tag of {model_name} "
                                 f"({', '.join(tags[:6])}...); pass a local weights file with {flag}")
    if hub_offline() and not _in_hf_cache(model_name, str(pretrained)):
        raise WeightsUnavailable(f"offline (HF_HUB_OFFLINE) and CLIP weights {model_name}/{pretrained} are not "
                                 f"cached; pass a local weights file with {flag} (or {flag} none for random weights)")


def check_weights(cfg: TrainConfig, data: RunData | None) -> None:
    """Text encoder always; CLIP only when the model uses images and some image is on disk (else the tower is
    never built); the matching tower whenever dynamic matching reads one."""
    check_text_encoder(cfg.model.text_model, cfg.model.random_init, max_seq=cfg.model.max_seq)
    if cfg.model.uses_images and (data is None or any(c.any_found for c in data.counts.values())):
        check_clip(cfg.model.clip_model, cfg.model.clip_pretrained)
    if cfg.model.tower_matching:  # its width is needed to build the network, images or not
        check_matching_tower(cfg.model.matching_tower)
