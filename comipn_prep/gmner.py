"""Twitter-GMNER (grounded MNER, Yu et al. 2023): its gold (entity span, type, region) per tweet.

The release (``Twitter10000`` in the NUSTM/GMNER repository) is a folder::

    txt/train.txt, txt/dev.txt, txt/test.txt     the tweets, in the CoNLL format of comipn_prep.conll
    xml/<imgid>.xml                              Pascal VOC boxes of the tweet's image (comipn_prep.voc)

An ``<object>``'s ``<name>`` is the text of an entity of the tweet; an entity with no object is not in
the picture (its region is "none"); an entity may have several boxes. Names are matched to entities by
their text with white space removed and case folded (``St . Petersberg`` in the tokens is
``St. Petersberg`` in a name); every entity with that text takes the boxes. A name that matches no entity
of its tweet is kept aside (:attr:`GmnerGold.unmatched`) and logged, never guessed onto another entity.

A dataset laid out by :mod:`comipn_prep.gmner_import` (``ROOT/NAME/{train,valid,test}.txt`` beside
``ROOT/NAME/xml/``) is read the same way: :func:`gmner_paths` takes either shape.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from .conll import Tweet, entity_spans, read_conll
from .layout import canonical_split
from .voc import Box, VocObject, read_voc

log = logging.getLogger(__name__)

# The release's file names first, then ours (comipn_prep.layout): dev and valid are the same split.
SPLIT_FILES = {"train": ("train.txt",), "valid": ("dev.txt", "valid.txt"), "test": ("test.txt",)}
XML_DIR = "xml"


@dataclass(frozen=True)
class GroundedEntity:
    """One gold entity: its type, token span (end exclusive), text and boxes (none: not in the picture)."""

    type: str
    start: int
    end: int
    text: str
    boxes: tuple[Box, ...] = ()


@dataclass
class GroundedTweet:
    imgid: str
    tokens: list[str]
    entities: list[GroundedEntity]


@dataclass
class GmnerGold:
    """The gold of one split: tweets by image id, in file order, and the names no entity took."""

    tweets: dict[str, GroundedTweet]
    text_path: Path
    xml_dir: Path
    unmatched: list[str] = field(default_factory=list)  # "<file>: <object> name" per name matching no entity
    without_xml: int = 0  # tweets whose image has no XML file (every entity: none)


def name_key(text: str) -> str:
    """What a box's ``<name>`` and an entity's text are compared by: no white space, case folded."""
    return "".join(text.split()).casefold()


def gmner_paths(folder: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """The text file of ``split`` and the XML folder of a GMNER-shaped ``folder``: the release's
    ``txt/<split>.txt`` + ``xml/``, or the imported ``<split>.txt`` + ``xml/`` (dev and valid are one split).
    FileNotFoundError naming what was looked for."""
    folder = Path(folder)
    split = canonical_split(split)
    tried = []
    for base in (folder / "txt", folder):
        for name in SPLIT_FILES[split]:
            tried.append(base / name)
            if tried[-1].is_file():
                xml_dir = folder / XML_DIR
                if not xml_dir.is_dir():
                    raise FileNotFoundError(f"{folder}: no {XML_DIR}/ folder (the VOC boxes, <imgid>.xml)")
                return tried[-1], xml_dir
    raise FileNotFoundError(f"{folder}: not a GMNER-shaped folder: none of {', '.join(map(str, tried))} exists")


def ground_entities(tweet: Tweet, objects: list[VocObject]) -> tuple[list[GroundedEntity], list[str]]:
    """The tweet's gold entities, each with the boxes whose name is its text; and the names matching none."""
    spans = entity_spans(tweet.labels or [])
    boxes: dict[str, list[Box]] = {}
    for obj in objects:
        boxes.setdefault(name_key(obj.name), []).append(obj.box)
    entities = []
    taken = set()
    for etype, start, end in spans:
        text = " ".join(tweet.tokens[start:end])
        key = name_key(text)
        taken.add(key)
        entities.append(GroundedEntity(etype, start, end, text, tuple(boxes.get(key, ()))))
    unmatched = [obj.name for obj in objects if name_key(obj.name) not in taken]
    return entities, unmatched


def read_gmner_split(folder: str | os.PathLike, split: str = "test") -> GmnerGold:
    """The gold grounded entities of ``split`` of a GMNER-shaped ``folder`` (see :func:`gmner_paths`).
    Bad text is a :class:`~comipn_prep.conll.ConllFormatError` (``file:line``), bad XML a
    :class:`~comipn_prep.voc.VocFormatError` (file and line or element)."""
    text_path, xml_dir = gmner_paths(folder, split)
    conll = read_conll(text_path, labeled=True)
    gold = GmnerGold(tweets={}, text_path=text_path, xml_dir=xml_dir)
    for tweet in conll.tweets:
        xml = xml_dir / f"{tweet.imgid}.xml"
        objects = read_voc(xml) if xml.is_file() else []
        gold.without_xml += not xml.is_file()
        entities, unmatched = ground_entities(tweet, objects)
        gold.unmatched += [f"{xml}: <object> {name!r} names no entity of IMGID:{tweet.imgid}" for name in unmatched]
        gold.tweets[tweet.imgid] = GroundedTweet(tweet.imgid, list(tweet.tokens), entities)
    for line in gold.unmatched[:5]:
        log.warning("%s", line)
    if len(gold.unmatched) > 5:
        log.warning("... and %d more boxes whose name matches no entity", len(gold.unmatched) - 5)
    return gold
