"""comipn_model: the Co-MIPN multimodal NER network and its trainer."""

__version__ = "0.1.0"
