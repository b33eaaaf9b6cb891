"""HVPNeT's released data layout, built small in a temp folder from real Twitter-2017 tweets.

The layout every user of the field already has on disk (HVPNeT's ``run.py`` reads it from
``data/NER_data``)::

    NER_data/twitter2017/{train,valid,test}.txt
    NER_data/twitter2017/twitter2017_{train,val,test}_dict.pth     keys "<imgid>.jpg", no .json twin
    NER_data/twitter2017_images/<imgid>.jpg
    NER_data/twitter2017_aux_images/{train,val,test}/crops/<imgid>_pred_yolo_crop_<n>.png

Use: ``from released_layout import make_released_layout`` (the tests folder is on ``sys.path``), then
``released.snapshot()`` before and after a command to prove that no byte changed and no file appeared.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from comipn_prep.conll import read_conll, write_conll
from comipn_prep.layout import SPLITS, DatasetLayout, crop_name

# Crops per image, in turn: 4 is more than grounding keeps (top 3), so a run that replaced them would
# also delete the fourth.
CROPS_CYCLE = (4, 2, 0, 1, 3)


@dataclass
class ReleasedLayout:
    data_root: Path  # the NER_data folder: what --data-root / comipn-prep ROOT names
    dataset: str

    @property
    def layout(self) -> DatasetLayout:
        return DatasetLayout(self.data_root, self.dataset)

    def imgids(self, split: str) -> list[str]:
        return [t.imgid for t in read_conll(self.layout.text_path(split))]

    def snapshot(self) -> dict[str, str]:
        """sha256 of every file under the whole temp folder (the NER_data root's parent): a command that
        wrote anything anywhere beside it shows up too."""
        base = self.data_root.parent
        return {str(p.relative_to(base)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(base.rglob("*")) if p.is_file() or p.is_symlink()}


def _picture(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    im = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(4):  # a few blocks, so detectors and crops see more than one flat colour
        x, y = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
        im.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + size[0] // 3, y + size[1] // 3))
    return im


def make_released_layout(base: Path, twitter_data: Path, *, dataset: str = "twitter2017",
                         tweets_per_split: int = 4, with_images: bool = True,
                         missing_images: int = 0, seed: int = 0) -> ReleasedLayout:
    """Build the released layout under ``base/NER_data`` from the first ``tweets_per_split`` real tweets
    of each split of ``twitter_data/<dataset>`` (the repository's ``data/``). ``missing_images``: that many
    images of each split are left out (the field's releases lack a few)."""
    rng = random.Random(seed)
    data_root = Path(base) / "NER_data"
    layout = DatasetLayout(data_root, dataset)
    layout.text_dir.mkdir(parents=True)
    layout.images_dir.mkdir()
    k = 0
    for split in SPLITS:
        tweets = read_conll(Path(twitter_data) / dataset / f"{split}.txt").tweets[:tweets_per_split]
        write_conll(layout.text_path(split), tweets)
        crops_dir = layout.crops_dir(split)
        crops_dir.mkdir(parents=True)
        aux: dict[str, list[str]] = {}
        for i, tweet in enumerate(tweets):
            if with_images and i >= missing_images:
                _picture(rng, (96, 64)).save(layout.images_dir / f"{tweet.imgid}.jpg", quality=90)
            names = [crop_name(tweet.imgid, n) for n in range(CROPS_CYCLE[k % len(CROPS_CYCLE)])]
            k += 1
            for name in names:
                _picture(rng, (24, 24)).save(crops_dir / name)
            aux[tweet.image_name] = names
        torch.save(aux, layout.dict_path(split))
    return ReleasedLayout(data_root, dataset)
