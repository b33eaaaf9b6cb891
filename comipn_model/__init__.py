"""comipn_model: the Co-MIPN multimodal NER network and its trainer."""

from comipn_model.batch import ModelBatch, VisualInputs, WordBatcher
from comipn_model.config import CoMIPNConfig
from comipn_model.model import CoMIPN, CoMIPNOutput

__version__ = "0.1.0"

__all__ = ["CoMIPN", "CoMIPNConfig", "CoMIPNOutput", "ModelBatch", "VisualInputs", "WordBatcher"]
