"""comipn_model: the Co-MIPN multimodal NER network, its trainer, and ``Tagger`` for new tweets."""

__version__ = "0.1.0"

from comipn_model.batch import ModelBatch, VisualInputs, WordBatcher  # noqa: E402
from comipn_model.config import CoMIPNConfig  # noqa: E402
from comipn_model.model import CoMIPN, CoMIPNOutput  # noqa: E402
from comipn_model.tagger import TaggedTweet, Tagger  # noqa: E402

__all__ = ["CoMIPN", "CoMIPNConfig", "CoMIPNOutput", "ModelBatch", "TaggedTweet", "Tagger", "VisualInputs",
           "WordBatcher"]
