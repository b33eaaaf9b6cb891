"""The Co-MIPN network: its config, the text encoder and frozen CLIP tower, the four ideas (prompts,
matching, multipath gate, contrastive), the CRF, and :mod:`~comipn_model.network.build`, the one place
that builds a network and loads weights into it."""
