"""How good the phrases are for grounding: size figures, and — for labelled input — entity coverage:
the share of gold entity spans that lie wholly inside one extracted NP, overall and per type."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from ..conll import ENTITY_TYPES, Tweet, entity_spans
from .io import TweetNPs


def np_figures(items: Sequence[TweetNPs]) -> dict:
    """Tweets, tokens, NPs, mean NP length (tokens) and the share of tokens inside NPs."""
    tokens = sum(len(item.tokens) for item in items)
    lengths = [np.end - np.start for item in items for np in item.nps]
    inside = sum(lengths)
    return {
        "tweets": len(items),
        "tokens": tokens,
        "nps": len(lengths),
        "np_tokens": inside,
        "mean_np_length": round(inside / len(lengths), 4) if lengths else 0.0,
        "np_token_share": round(inside / tokens, 4) if tokens else 0.0,
    }


def _covered(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def entity_coverage(tweets: Sequence[Tweet], items: Sequence[TweetNPs]) -> dict | None:
    """Share of gold entity spans (read as conlleval reads BIO) lying wholly inside one NP.

    None when the tweets carry no labels (predict-time input)."""
    if len(tweets) != len(items):
        raise ValueError(f"{len(tweets)} tweets but {len(items)} NP lines")
    if any(t.raw_labels is None for t in tweets):
        return None
    total: Counter[str] = Counter()
    covered: Counter[str] = Counter()
    for tweet, item in zip(tweets, items):
        if tweet.imgid != item.imgid or len(tweet.tokens) != len(item.tokens):
            raise ValueError(f"NP line for IMGID:{item.imgid} does not match tweet IMGID:{tweet.imgid}")
        spans = item.spans()
        for etype, start, end in entity_spans(tweet.labels or []):
            total[etype] += 1
            covered[etype] += _covered(spans, start, end)
    return coverage_dict(total, covered)


def coverage_dict(total: Counter, covered: Counter) -> dict:
    all_total, all_covered = sum(total.values()), sum(covered.values())
    per_type = {
        etype: {"entities": total[etype], "covered": covered[etype],
                "coverage": round(covered[etype] / total[etype], 4) if total[etype] else None}
        for etype in (*ENTITY_TYPES, *sorted(set(total) - set(ENTITY_TYPES)))
    }
    return {"entities": all_total, "covered": all_covered,
            "coverage": round(all_covered / all_total, 4) if all_total else None, "per_type": per_type}


def merge_coverage(parts: Sequence[dict | None]) -> dict | None:
    """Coverage of several splits together (None if any split is unlabelled)."""
    if not parts or any(p is None for p in parts):
        return None
    total: Counter[str] = Counter()
    covered: Counter[str] = Counter()
    for part in parts:
        for etype, row in part["per_type"].items():
            total[etype] += row["entities"]
            covered[etype] += row["covered"]
    return coverage_dict(total, covered)
