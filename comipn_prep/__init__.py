"""comipn_prep: the preprocessing of multimodal NER data (noun phrases, visual grounding, aux dicts)."""

from .conll import ConllFile, ConllFormatError, Tweet, entity_spans, read_conll, write_conll
from .layout import SPLITS, DatasetLayout

__all__ = ["ConllFile", "ConllFormatError", "Tweet", "entity_spans", "read_conll", "write_conll",
           "SPLITS", "DatasetLayout"]
__version__ = "0.1.0"
