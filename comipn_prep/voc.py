"""Pascal VOC XML annotations (one file per image): each ``<object>``'s ``<name>`` and ``<bndbox>``.

Twitter-GMNER gives a tweet's gold regions so: one ``<imgid>.xml`` per image, one ``<object>`` per box, its
``<name>`` the entity's text (an entity may have several boxes), ``<bndbox>`` its ``xmin`` / ``ymin`` /
``xmax`` / ``ymax`` in the image's pixels. The XML is parsed with ``defusedxml`` (no entity expansion, no
external references: a file cannot make the reader fetch or inflate anything). Every problem is a
:class:`VocFormatError` naming the file and the line (malformed XML) or the element (a missing or bad value).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in the image's pixels
BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


class VocFormatError(ValueError):
    """A VOC XML file that cannot be read as annotations; the message names the file and the line or element."""


@dataclass(frozen=True)
class VocObject:
    """One annotated box: the ``<name>`` it carries and its ``<bndbox>``."""

    name: str
    box: Box


def parse_voc(data: bytes | str, path: str = "<string>") -> list[VocObject]:
    """The objects of one VOC annotation, in file order (an annotation without objects gives ``[]``)."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        root = fromstring(data)
    except ParseError as err:
        line, column = getattr(err, "position", (0, 0))
        raise VocFormatError(f"{path}:{line}:{column}: not well-formed XML ({err})") from None
    except DefusedXmlException as err:
        raise VocFormatError(f"{path}: refused: {err}") from None
    if root.tag != "annotation":
        raise VocFormatError(f"{path}: the root element is <{root.tag}>, expected <annotation>")
    objects = []
    for k, obj in enumerate(root.iter("object"), start=1):
        name_el = obj.find("name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        where = f"{path}: <object> {k}" + (f" ({name!r})" if name else "")
        if not name:
            raise VocFormatError(f"{where}: no <name> (the entity's text)")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise VocFormatError(f"{where}: no <bndbox>")
        values = []
        for field_name in BOX_FIELDS:
            el = bndbox.find(field_name)
            if el is None or not (el.text or "").strip():
                raise VocFormatError(f"{where}: <bndbox> has no <{field_name}>")
            try:
                value = float(el.text.strip())
            except ValueError:
                raise VocFormatError(f"{where}: <bndbox><{field_name}> {el.text.strip()!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise VocFormatError(f"{where}: <bndbox><{field_name}> {el.text.strip()!r} is not a pixel "
                                     "coordinate (a finite number >= 0)")
            values.append(value)
        x1, y1, x2, y2 = values
        if x2 < x1 or y2 < y1:
            raise VocFormatError(f"{where}: <bndbox> xmax/ymax ({x2:g}, {y2:g}) lie before xmin/ymin "
                                 f"({x1:g}, {y1:g})")
        objects.append(VocObject(name, (x1, y1, x2, y2)))
    return objects


def read_voc(path: str | os.PathLike) -> list[VocObject]:
    """The objects of the VOC annotation file ``path``; see :func:`parse_voc`."""
    path = Path(path)
    return parse_voc(path.read_bytes(), str(path))
