"""Noun phrases of every tweet of a split / a dataset folder, with the summary figures.

read (CoNLL) -> classify debris + tagger-safe tokens -> backend (tags, raw chunks) -> tweet rules ->
write ``<split>.nps.jsonl`` (atomic) and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import multiprocessing
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..conll import Tweet, atomic_write_bytes, read_conll, require_tweets
from ..layout import SPLITS, canonical_split
from .backends import DEFAULT_SPACY_MODEL, Backend, load_backend, resolve_backend_name
from .coverage import entity_coverage, merge_coverage, np_figures
from .io import NounPhrase, TweetNPs, write_nps_jsonl
from .normalise import tagger_token, token_kinds
from .rules import refine

logger = logging.getLogger(__name__)

# Bump when the rules change what is extracted: outputs of an older version are not reused.
RULES_VERSION = 1
SUMMARY_NAME = "summary.json"
EMPTY_SPLIT_HINT = "a split without tweets is almost always a wrong or half-copied file; leave it out with --split"


@dataclass
class ExtractConfig:
    """The settings of one :func:`extract_nps` run (saved in ``summary.json``); workers and chunk size
    change the speed, never the output."""

    backend: str = "auto"
    spacy_model: str = DEFAULT_SPACY_MODEL
    nltk_data: str | None = None
    workers: int = 1
    chunk_size: int = 250  # tweets per task sent to a worker process


def nps_path(out_dir: str | Path, split: str) -> Path:
    return Path(out_dir) / f"{canonical_split(split)}.nps.jsonl"


def tweet_spans(backend: Backend, tweets: Sequence[tuple[str, list[str]]]) -> list[list[tuple[int, int]]]:
    """NP spans of ``(imgid, tokens)`` pairs with one loaded backend."""
    words = [[tagger_token(t) for t in tokens] for _, tokens in tweets]
    analysed = backend.analyse(words)
    return [refine(tokens, token_kinds(tokens), tags, raw)
            for (_, tokens), (tags, raw) in zip(tweets, analysed)]


def _to_items(tweets: Sequence[tuple[str, list[str]]], spans: list[list[tuple[int, int]]]) -> list[TweetNPs]:
    return [TweetNPs(imgid=imgid, tokens=list(tokens),
                     nps=[NounPhrase(s, e, " ".join(tokens[s:e])) for s, e in tweet_spans_])
            for (imgid, tokens), tweet_spans_ in zip(tweets, spans)]


def extract_batch(backend: Backend, tweets: Sequence[tuple[str, list[str]]]) -> list[TweetNPs]:
    """NPs of ``(imgid, tokens)`` pairs with one loaded backend."""
    return _to_items(tweets, tweet_spans(backend, tweets))


_BACKENDS: dict[tuple, Backend] = {}


def get_backend(name: str = "textblob", spacy_model: str = DEFAULT_SPACY_MODEL,
                nltk_data: str | None = None) -> Backend:
    """A loaded backend, cached per process (loading spaCy or NLTK models takes seconds)."""
    key = (resolve_backend_name(name, spacy_model, nltk_data), spacy_model, nltk_data)
    if key not in _BACKENDS:
        _BACKENDS[key] = load_backend(*key)
    return _BACKENDS[key]


def extract_tweet_nps(tokens: Sequence[str], *, imgid: str = "", backend: str | Backend = "textblob",
                      spacy_model: str = DEFAULT_SPACY_MODEL, nltk_data: str | None = None) -> TweetNPs:
    """The noun phrases of one tweet (``backend`` a name or a loaded backend)."""
    if isinstance(backend, str):
        backend = get_backend(backend, spacy_model, nltk_data)
    return extract_batch(backend, [(imgid, list(tokens))])[0]


@contextlib.contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: the work makes no reference cycles, and each collection would
    walk the taggers' lexicons (about 100,000 entries) — that cost a third of the run time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# Worker processes: the backend is loaded once per process; forked workers inherit it and the tweets,
# so a task is just a range of tweet indices and a result just the spans (little to pickle).
_worker_backend: Backend | None = None
_worker_pairs: list[tuple[str, list[str]]] = []


def _init_worker(backend: Backend | None, name: str, spacy_model: str, nltk_data: str | None) -> None:
    global _worker_backend
    _worker_backend = backend if backend is not None else get_backend(name, spacy_model, nltk_data)
    gc.disable()  # see _gc_paused; the worker exits when the pool closes


def _work_range(bounds: tuple[int, int]) -> list[list[tuple[int, int]]]:
    assert _worker_backend is not None
    return tweet_spans(_worker_backend, _worker_pairs[bounds[0]:bounds[1]])


def _work_pairs(chunk: list[tuple[str, list[str]]]) -> list[list[tuple[int, int]]]:
    assert _worker_backend is not None
    return tweet_spans(_worker_backend, chunk)


def extract_tweets(tweets: Sequence[Tweet], backend: Backend, config: ExtractConfig,
                   desc: str = "extract-nps", progress: bool = True) -> list[TweetNPs]:
    """NPs of many tweets, in order; ``config.workers`` > 1 uses that many processes (same output)."""
    global _worker_pairs
    pairs = [(t.imgid, t.tokens) for t in tweets]
    size = max(1, config.chunk_size)
    bounds = [(i, min(i + size, len(pairs))) for i in range(0, len(pairs), size)]
    items: list[TweetNPs] = []

    def progress_bar():
        return tqdm(total=len(pairs), desc=desc, unit="tweet", leave=False,
                    disable=not progress or len(pairs) < 2000)

    with _gc_paused():
        if config.workers <= 1 or len(bounds) <= 1:
            with progress_bar() as bar:
                for a, b in bounds:
                    items.extend(_to_items(pairs[a:b], tweet_spans(backend, pairs[a:b])))
                    bar.update(b - a)
        else:
            if "fork" in multiprocessing.get_all_start_methods():
                ctx = multiprocessing.get_context("fork")
                _worker_pairs = pairs  # inherited by the forked workers
                init_args: tuple = (backend, "", "", None)
                work, tasks = _work_range, bounds
            else:  # pragma: no cover - platforms without fork
                ctx = multiprocessing.get_context("spawn")
                init_args = (None, backend.name, config.spacy_model, config.nltk_data)
                work, tasks = _work_pairs, [pairs[a:b] for a, b in bounds]
            try:
                # The pool forks before the progress bar starts its monitor thread.
                with ctx.Pool(config.workers, initializer=_init_worker, initargs=init_args) as pool, \
                        progress_bar() as bar:
                    # imap keeps file order; the items of a chunk are built while workers do the next ones.
                    for (a, b), result in zip(bounds, pool.imap(work, tasks)):
                        items.extend(_to_items(pairs[a:b], result))
                        bar.update(b - a)
            finally:
                _worker_pairs = []
    return items


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract_split(tweets: Sequence[Tweet], backend: Backend, config: ExtractConfig,
                  desc: str = "extract-nps", progress: bool = True) -> tuple[list[TweetNPs], dict]:
    """NPs of one split and its summary entry (figures, speed, coverage when labelled)."""
    start = time.perf_counter()
    items = extract_tweets(tweets, backend, config, desc=desc, progress=progress)
    seconds = time.perf_counter() - start
    entry = np_figures(items)
    entry["seconds"] = round(seconds, 4)
    entry["tweets_per_second"] = round(len(items) / seconds, 1) if seconds > 0 else None
    entry["workers"] = config.workers
    entry["coverage"] = entity_coverage(tweets, items)
    return items, entry


def _read_summary(out_dir: Path) -> dict:
    path = out_dir / SUMMARY_NAME
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _totals(entries: list[dict]) -> dict:
    tweets = sum(e["tweets"] for e in entries)
    tokens = sum(e["tokens"] for e in entries)
    nps = sum(e["nps"] for e in entries)
    inside = sum(e["np_tokens"] for e in entries)
    seconds = sum(e["seconds"] for e in entries)
    return {"tweets": tweets, "tokens": tokens, "nps": nps, "np_tokens": inside,
            "mean_np_length": round(inside / nps, 4) if nps else 0.0,
            "np_token_share": round(inside / tokens, 4) if tokens else 0.0,
            "seconds": round(seconds, 4),
            "tweets_per_second": round(tweets / seconds, 1) if seconds > 0 else None,
            "coverage": merge_coverage([e["coverage"] for e in entries])}


def extract_nps(data_dir: str | Path, out_dir: str | Path, *, backend: str = "auto",
                splits: Sequence[str] = SPLITS, workers: int = 1, spacy_model: str = DEFAULT_SPACY_MODEL,
                nltk_data: str | None = None, force: bool = False, progress: bool = True) -> dict:
    """Write ``OUT_DIR/<split>.nps.jsonl`` for ``DATA_DIR/<split>.txt`` and ``OUT_DIR/summary.json``.

    A split whose output exists is kept when ``summary.json`` shows it was made from the same input
    (sha256) by the same backend and rules, so a re-run resumes; any other existing output is refused
    unless ``force``. The summary (returned, and written after every split) describes every split in
    OUT_DIR made by this backend and rules, earlier runs' included."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    splits = [canonical_split(s) for s in splits]
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    inputs = {s: data_dir / f"{s}.txt" for s in splits}
    missing = [str(p) for p in inputs.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"no such input file: {', '.join(missing)}")
    # Every split read (and an empty one refused) before the backend loads.
    read = {s: read_conll(path, labeled=None).tweets for s, path in inputs.items()}
    for s, tweets in read.items():
        require_tweets(inputs[s], len(tweets), "split", EMPTY_SPLIT_HINT)
    config = ExtractConfig(backend=backend, spacy_model=spacy_model, nltk_data=nltk_data, workers=workers)
    loaded = get_backend(backend, spacy_model, nltk_data)
    previous = _read_summary(out_dir)
    same_maker = (previous.get("backend") == loaded.name and previous.get("backend_version") == loaded.version
                  and previous.get("rules_version") == RULES_VERSION)
    earlier = previous.get("splits", {}) if same_maker else {}
    summary = {
        "backend": loaded.name,
        "backend_version": loaded.version,
        "rules_version": RULES_VERSION,
        "config": asdict(config),
        "splits": {s: e for s, e in earlier.items() if s not in splits},
    }
    for split in splits:
        target = nps_path(out_dir, split)
        sha = _sha256(inputs[split])
        if target.exists() and not force:
            old = earlier.get(split)
            if old and old.get("input_sha256") == sha:
                logger.info("%s: already extracted from the same input, kept (use --force to redo)", target)
                summary["splits"][split] = old
                continue
            raise FileExistsError(f"{target} exists (made from other input or settings); "
                                  f"pass --force to overwrite it")
        tweets = read[split]
        items, entry = extract_split(tweets, loaded, config, desc=f"extract-nps {split}", progress=progress)
        write_nps_jsonl(target, items)
        entry = {"input": str(inputs[split]), "input_sha256": sha, "output": str(target), **entry}
        summary["splits"][split] = entry
        cov = entry["coverage"]
        logger.info("%s: %d tweets, %d NPs, mean length %.2f, %.1f%% of tokens in NPs, %.0f tweets/s%s",
                    split, entry["tweets"], entry["nps"], entry["mean_np_length"],
                    100 * entry["np_token_share"], entry["tweets_per_second"] or 0,
                    f", entity coverage {100 * cov['coverage']:.2f}%" if cov and cov["coverage"] is not None
                    else "")
        # Written after every split, so an interrupted run resumes where it stopped.
        _write_summary(out_dir, summary)
    _write_summary(out_dir, summary)
    return summary


def _write_summary(out_dir: Path, summary: dict) -> None:
    order = {s: i for i, s in enumerate(SPLITS)}
    summary["splits"] = dict(sorted(summary["splits"].items(), key=lambda kv: order.get(kv[0], len(order))))
    summary["all"] = _totals(list(summary["splits"].values()))
    atomic_write_bytes(out_dir / SUMMARY_NAME, (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
