"""Pascal VOC XML boxes (comipn_prep.voc): objects in file order; every problem names the file and the
line (malformed XML) or the element (a missing or bad value); entity expansion is refused."""

from __future__ import annotations

import pytest

from comipn_prep.voc import VocFormatError, VocObject, parse_voc, read_voc


def test_objects_in_file_order_with_float_coordinates(tmp_path, voc_annotation):
    path = tmp_path / "1000046.xml"
    path.write_text(voc_annotation([("Bieber", (132, 22, 500, 706)), ("Bieber", (1.5, 2, 30, 40.25)),
                                    ("  Selena Gomez ", (0, 0, 10, 10))]))
    assert read_voc(path) == [VocObject("Bieber", (132.0, 22.0, 500.0, 706.0)),
                              VocObject("Bieber", (1.5, 2.0, 30.0, 40.25)), VocObject("Selena Gomez", (0, 0, 10, 10))]
    assert parse_voc(voc_annotation([])) == []


def test_malformed_xml_names_file_line_and_column():
    with pytest.raises(VocFormatError, match=r"^x\.xml:3:\d+: not well-formed XML"):
        parse_voc("<annotation>\n<object><name>a</name>\n</annotation>\n", "x.xml")


@pytest.mark.parametrize("box, says", [
    (("1", "2", "abc", "4"), "<object> 1 ('A'): <bndbox><xmax> 'abc' is not a number"),
    (("1", "2", "-3", "4"), "<bndbox><xmax> '-3' is not a pixel coordinate"),
    (("1", "2", "nan", "4"), "<bndbox><xmax> 'nan' is not a pixel coordinate"),
    (("10", "2", "5", "4"), "<bndbox> xmax/ymax (5, 4) lie before xmin/ymin (10, 2)"),
])
def test_bad_numbers_name_the_object_and_element(voc_annotation, box, says):
    with pytest.raises(VocFormatError, match="^y.xml: ") as err:
        parse_voc(voc_annotation([("A", box)]), "y.xml")
    assert says in str(err.value)


def test_missing_elements_are_named():
    with pytest.raises(VocFormatError, match=r"<object> 1: no <name>"):
        parse_voc("<annotation><object><bndbox/></object></annotation>", "z.xml")
    with pytest.raises(VocFormatError, match=r"<object> 1 \('A'\): no <bndbox>"):
        parse_voc("<annotation><object><name>A</name></object></annotation>", "z.xml")
    with pytest.raises(VocFormatError, match=r"<bndbox> has no <ymax>"):
        parse_voc("<annotation><object><name>A</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
                  "</bndbox></object></annotation>", "z.xml")
    with pytest.raises(VocFormatError, match=r"the root element is <svg>"):
        parse_voc("<svg/>", "z.xml")


def test_entity_expansion_is_refused():
    bomb = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]>'
            "<annotation><object><name>&y;</name></object></annotation>")
    with pytest.raises(VocFormatError, match=r"^b\.xml: refused"):
        parse_voc(bomb, "b.xml")
