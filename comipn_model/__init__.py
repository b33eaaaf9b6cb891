"""comipn_model: the Co-MIPN multimodal NER network, its trainer, and ``Tagger`` for new tweets.

The package's public face: the names users and the docs reach from here. Everything else is imported
from the module it lives in (docs/architecture.md maps them):

- :mod:`comipn_model.data`: the field's layout -> examples -> batches;
- :mod:`comipn_model.network`: the network, its parts, and the one place that builds it and loads weights;
- :mod:`comipn_model.saved`: run folders, the exported-model format, and the one loader;
- :mod:`comipn_model.training` and :mod:`comipn_model.inference` (Tagger, predict), side by side;
- :mod:`comipn_model.cli`: ``comipn-train``.
"""

from comipn_model.data.batch import ModelBatch, VisualInputs, WordBatcher
from comipn_model.inference.tagger import TaggedTweet, Tagger
from comipn_model.network.config import CoMIPNConfig
from comipn_model.network.model import CoMIPN, CoMIPNOutput
from comipn_model.training.config import TrainConfig
from comipn_model.training.loop import train
from comipn_model.version import __version__

__all__ = ["CoMIPN", "CoMIPNConfig", "CoMIPNOutput", "ModelBatch", "TaggedTweet", "Tagger", "TrainConfig",
           "VisualInputs", "WordBatcher", "__version__", "train"]
