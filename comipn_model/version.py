"""The package's version, in a module of its own: the exported-model format and the CLI read it without
importing the package's public face (:mod:`comipn_model`, which imports nearly everything)."""

__version__ = "0.1.0"
