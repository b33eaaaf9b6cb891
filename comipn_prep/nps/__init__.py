"""Stage 1 of the preprocessing: the noun phrases of every tweet, as spans of its own tokens.

``comipn_prep.nps.extract.extract_nps(data_dir, out_dir)`` writes ``<split>.nps.jsonl`` and
``summary.json``; see ``docs/noun-phrases.md``. Import each name from the module it lives in.
"""
