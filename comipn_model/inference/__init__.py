"""New tweets in, entities out: ``Tagger`` (raw tweets and pictures, in memory) and ``predict`` (files)."""
