"""Stage 1 of the preprocessing: the noun phrases of every tweet, as spans of its own tokens.

``extract_nps(data_dir, out_dir)`` writes ``<split>.nps.jsonl`` and ``summary.json``; see
``docs/noun-phrases.md``.
"""

from .backends import BACKENDS, BackendUnavailable, load_backend
from .extract import ExtractConfig, extract_nps, extract_tweet_nps, nps_path
from .io import NounPhrase, NPFormatError, TweetNPs, read_nps_jsonl, write_nps_jsonl

__all__ = ["BACKENDS", "BackendUnavailable", "ExtractConfig", "NPFormatError", "NounPhrase", "TweetNPs",
           "extract_nps", "extract_tweet_nps", "load_backend", "nps_path", "read_nps_jsonl",
           "write_nps_jsonl"]
