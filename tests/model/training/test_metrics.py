"""seqeval scores (comipn_model.training.metrics) against conlleval's entity counts, on real tweets."""

from __future__ import annotations

import random

import pytest

from comipn_prep.conll import entity_spans, read_conll
from comipn_model.training.metrics import overall, report


def test_metrics_match_conlleval_counts(twitter_data):
    gold = [t.labels for t in read_conll(twitter_data / "twitter2015" / "valid.txt").tweets]
    rng = random.Random(0)
    labels = sorted({lab for seq in gold for lab in seq})
    pred = [[lab if rng.random() < 0.9 else rng.choice(labels) for lab in seq] for seq in gold]
    g = {(i, *s) for i, seq in enumerate(gold) for s in entity_spans(seq)}
    p = {(i, *s) for i, seq in enumerate(pred) for s in entity_spans(seq)}
    precision, recall = len(g & p) / len(p), len(g & p) / len(g)
    scores = overall(gold, pred)
    assert scores.precision == pytest.approx(precision)
    assert scores.recall == pytest.approx(recall)
    assert scores.f1 == pytest.approx(2 * precision * recall / (precision + recall))
    rep = report(gold, pred)
    assert set(rep["per_type"]) == {"PER", "LOC", "ORG", "MISC"}
    for etype, row in rep["per_type"].items():
        assert row["support"] == sum(1 for s in g if s[1] == etype)
    assert rep["overall"]["f1"] == pytest.approx(scores.f1)
    with pytest.raises(ValueError):
        overall(gold, pred[:-1])
