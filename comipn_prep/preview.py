"""``preview``: a contact sheet of images with their kept boxes, labelled with phrase and score; or with
each tagged entity's region (``comipn-train predict --linker`` JSONL), labelled with type, text and score."""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path

import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from .conll import atomic_write_bytes
from .grounding.manifest import read_split_manifests
from .images import ImageLoadError, load_image
from .layout import SPLIT_FOLDERS, canonical_split, find_image

logger = logging.getLogger(__name__)

COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def _label(row) -> str:
    score = row["clip_score"]
    text = f"{int(row['rank'])}"
    if row["phrase"]:
        text += f" {row['phrase'][:24]}"
    if not pd.isna(score):
        text += f" {score:.2f}"
    elif not pd.isna(row["det_score"]):
        text += f" det {row['det_score']:.2f}"
    return text


def draw_boxes(image: Image.Image, rows: pd.DataFrame, cell: int) -> Image.Image:
    """The image scaled to fit ``cell`` x ``cell`` with each kept box and its label drawn."""
    scale = min(cell / image.width, cell / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    thumb = image.resize(size, Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (cell, cell), (32, 32, 32))
    canvas.paste(thumb, ((cell - size[0]) // 2, (cell - size[1]) // 2))
    ox, oy = (cell - size[0]) // 2, (cell - size[1]) // 2
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for k, (_, row) in enumerate(rows.iterrows()):
        colour = COLOURS[k % len(COLOURS)]
        box = [ox + row["x1"] * scale, oy + row["y1"] * scale, ox + row["x2"] * scale, oy + row["y2"] * scale]
        draw.rectangle(box, outline=colour, width=2)
        label = _label(row)
        tx, ty = box[0] + 2, max(0, box[1] - 12) if box[1] >= 12 else box[1] + 2
        bbox = draw.textbbox((tx, ty), label, font=font)
        draw.rectangle(bbox, fill=colour)
        draw.text((tx, ty), label, fill=(255, 255, 255), font=font)
    return canvas


def _caption(canvas: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (canvas.width, canvas.height + 14), (0, 0, 0))
    out.paste(canvas, (0, 14))
    ImageDraw.Draw(out).text((2, 1), text, fill=(255, 255, 255), font=ImageFont.load_default())
    return out


def contact_sheet(aux_dir: Path, images_dir: Path, split: str, n: int = 16, cell: int = 256,
                  with_crops_only: bool = True) -> Image.Image:
    """Up to ``n`` images of the split (in manifest order), boxes drawn, in a square-ish grid."""
    split_dir = Path(aux_dir) / SPLIT_FOLDERS[canonical_split(split)]
    df = read_split_manifests(split_dir)
    if not len(df):
        raise FileNotFoundError(f"{split_dir}: no grounding manifest (run comipn-prep ground first)")
    if with_crops_only:
        df = df[df["status"] == "ok"]
    tiles = []
    for imgid, rows in df.groupby("imgid", sort=False):
        if len(tiles) >= n:
            break
        path = find_image(Path(images_dir), imgid)
        try:
            image = load_image(path) if path is not None else None
        except ImageLoadError as err:
            logger.warning("%s", err)
            image = None
        if image is None:
            continue
        rows = rows[rows["crop_file"] != ""].sort_values("rank")
        tiles.append(_caption(draw_boxes(image, rows, cell), f"{imgid} ({len(rows)} crops)"))
    if not tiles:
        raise ValueError(f"{split_dir}: no image with crops to show (images looked up in {images_dir})")
    return _grid(tiles)


def entity_sheet(predictions: Path, images_dir: Path | None = None, n: int = 16, cell: int = 256) -> Image.Image:
    """Up to ``n`` tagged tweets (predict JSONL, in file order) whose entities have a region: each image
    with each entity's ``box`` drawn and labelled ``TYPE text box_score``, captioned with the tweet. The
    image is the row's ``"image"``, else ``<imgid>`` looked up in ``images_dir``."""
    from .jsonl import json_lines

    tiles = []
    for _, where, row in json_lines(Path(predictions)):
        if len(tiles) >= n:
            break
        if not isinstance(row, dict) or not isinstance(row.get("entities"), list):
            raise ValueError(f"{where}: expected a predict JSONL object with \"entities\"")
        boxed = [e for e in row["entities"] if isinstance(e, dict) and isinstance(e.get("box"), list)]
        if not boxed:
            continue
        path = Path(row["image"]) if row.get("image") else (
            find_image(Path(images_dir), str(row.get("imgid", row.get("id")))) if images_dir else None)
        try:
            image = load_image(path) if path is not None else None
        except ImageLoadError as err:
            logger.warning("%s: %s", where, err)
            image = None
        if image is None:
            logger.warning("%s: no image for this tweet (give --images)", where)
            continue
        rows = pd.DataFrame([{"rank": k, "phrase": f"{e.get('entity_group')} {e.get('word', '')}",
                              "clip_score": e.get("box_score", math.nan), "det_score": math.nan,
                              "x1": e["box"][0], "y1": e["box"][1], "x2": e["box"][2], "y2": e["box"][3]}
                             for k, e in enumerate(boxed)])
        rows["clip_score"] = pd.to_numeric(rows["clip_score"])
        text = str(row.get("text", ""))
        tiles.append(_caption(draw_boxes(image, rows, cell), text[:cell // 6]))
    if not tiles:
        raise ValueError(f"{predictions}: no tweet with an entity region to show (predict with --linker)")
    return _grid(tiles)


def _grid(tiles: list[Image.Image]) -> Image.Image:
    cols = math.ceil(math.sqrt(len(tiles)))
    rows_n = math.ceil(len(tiles) / cols)
    tw, th = tiles[0].size
    sheet = Image.new("RGB", (cols * tw, rows_n * th), (0, 0, 0))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % cols) * tw, (k // cols) * th))
    return sheet


def write_sheet(sheet: Image.Image, out: Path, force: bool = False) -> None:
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists; pass --force to replace it")
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue())
