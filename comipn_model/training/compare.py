"""Two results compared as a reviewer would: is B's test F1 above A's more than resampling the test tweets
explains (a paired bootstrap over tweets), and, for runs of several seeds, the per-seed paired differences.

A result is a run folder (``test_report.json`` + ``test_predictions.txt``) or a folder of run folders
(one per seed, e.g. ``seed-1/``, ``seed-2/``). Both must be scored on the same test file (the sha256 in
their reports' ``data``); the tags of both are compared tweet by tweet.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from comipn_prep.conll import entity_spans, normalise_label
from comipn_model.saved import run_folder as rf


class NotComparable(ValueError):
    """The two results are not of the same test split (or not results at all)."""


@dataclass
class TestRun:
    """One scored run: its folder, the test file's sha256, and per tweet the gold and predicted tags."""

    folder: Path
    test_sha256: str | None
    gold: list[list[str]]
    pred: list[list[str]]

    @cached_property
    def counts(self) -> np.ndarray:
        """Per tweet ``(correct entities, predicted entities, gold entities)``, conlleval's way (once a run)."""
        rows = []
        for gold, pred in zip(self.gold, self.pred):
            g, p = set(entity_spans(gold)), set(entity_spans(pred))
            rows.append((len(g & p), len(p), len(g)))
        return np.asarray(rows, dtype=np.int64).reshape(-1, 3)

    @property
    def f1(self) -> float:
        return float(f1_of(self.counts.sum(0)))


def f1_of(counts: np.ndarray) -> np.ndarray:
    """Micro F1 from summed ``(correct, predicted, gold)`` (last axis); 0 where nothing was predicted or due."""
    correct, predicted, gold = (counts[..., i].astype(np.float64) for i in range(3))
    denominator = predicted + gold
    return np.divide(2 * correct, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def read_predictions(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """``test_predictions.txt`` (``token<TAB>gold<TAB>predicted``, tweets opened by ``IMGID:`` lines):
    gold tags (OTHER read as MISC, as training scored them) and predicted tags per tweet."""
    gold: list[list[str]] = []
    pred: list[list[str]] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("IMGID:"):
            gold.append([])
            pred.append([])
        elif line.strip():
            cols = line.split("\t")
            if len(cols) != 3 or not gold:
                raise NotComparable(f"{path}:{lineno}: expected 'token<TAB>gold<TAB>predicted' after an IMGID line")
            gold[-1].append(normalise_label(cols[1]))
            pred[-1].append(cols[2])
    return gold, pred


def read_run(folder: Path) -> TestRun:
    report_path, predictions = folder / rf.TEST_REPORT, folder / rf.TEST_PREDICTIONS
    for path in (report_path, predictions):
        if not path.is_file():
            raise NotComparable(f"{folder}: no {path.name}: not a scored run (train it to the end, or score it "
                                f"with --only-test)")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    test = ((report.get("data") or {}).get("splits") or {}).get("test") or {}
    gold, pred = read_predictions(predictions)
    return TestRun(folder, test.get("sha256"), gold, pred)


def read_result(folder: str | Path) -> dict[str, TestRun]:
    """``{name: run}``: a run folder as ``{"": run}``, a folder of run folders as ``{"seed-1": run, ...}``."""
    folder = Path(folder)
    if (folder / rf.TEST_REPORT).is_file():
        return {"": read_run(folder)}
    runs = {sub.name: read_run(sub) for sub in sorted(folder.iterdir()) if (sub / rf.TEST_REPORT).is_file()} \
        if folder.is_dir() else {}
    if not runs:
        raise NotComparable(f"{folder}: neither a scored run folder ({rf.TEST_REPORT}) nor a folder of them")
    return runs


def check_same_test(a: dict[str, TestRun], b: dict[str, TestRun]) -> None:
    """Refuse results of different test files (by sha256), or of the same file tagged with other tweets."""
    runs = list(a.values()) + list(b.values())
    shas = {r.test_sha256 for r in runs}
    if None in shas:
        missing = next(r.folder for r in runs if r.test_sha256 is None)
        raise NotComparable(f"{missing}: its {rf.TEST_REPORT} names no test file (made before comipn recorded "
                            f"split fingerprints): score it again with --only-test")
    if len(shas) > 1:
        listed = "; ".join(f"{r.folder}: {r.test_sha256[:12]}" for r in runs)
        raise NotComparable(f"the results are of different test files (sha256 {listed}): a difference of F1 "
                            f"would compare the files, not the models")
    reference = runs[0]
    for run in runs[1:]:
        if run.gold != reference.gold:
            raise NotComparable(f"{run.folder} and {reference.folder}: the same test file but other gold tags "
                                f"in {rf.TEST_PREDICTIONS} (a --sample-ratio or an edited file?)")


def paired_bootstrap(counts_a: np.ndarray, counts_b: np.ndarray, resamples: int = 10_000, seed: int = 0,
                     chunk: int = 500) -> dict:
    """F1(B) - F1(A) on the tweets, its 95% interval over ``resamples`` resamplings of the tweets (the
    same tweets for both), and a two-sided p-value: how often a resampled difference lies as far from
    the observed one as the observed one lies from 0 (the shift method; 1 when the difference is 0)."""
    n = len(counts_a)
    observed = float(f1_of(counts_b.sum(0)) - f1_of(counts_a.sum(0)))
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size)  # how often each tweet is drawn
        diffs.append(f1_of(weights @ counts_b) - f1_of(weights @ counts_a))
    resampled = np.concatenate(diffs)
    extreme = int(np.sum(np.abs(resampled - observed) >= abs(observed) - 1e-12))
    low, high = np.percentile(resampled, [2.5, 97.5])
    return {"difference": observed, "ci95": [float(low), float(high)], "p_value": (extreme + 1) / (resamples + 1),
            "resamples": resamples, "seed": seed, "tweets": n}


def almost_stochastic_order(scores_a: list[float], scores_b: list[float], seed: int = 0,
                            iterations: int = 1000) -> float:
    """deepsig's ASO ``eps_min`` for "B is stochastically larger than A" over seeds' scores: 0 when B's
    scores dominate A's, 1 when A's dominate B's, 0.5 undecided; below 0.2 is the usual threshold."""
    import warnings

    from deepsig import aso

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical score lists divide by zero inside; the answer is 1
        return float(aso(list(scores_b), list(scores_a), seed=seed, num_bootstrap_iterations=iterations,
                         show_progress=False, num_jobs=1))


def compare(result_a: str | Path, result_b: str | Path, *, resamples: int = 10_000, seed: int = 0,
            aso_iterations: int = 1000) -> dict:
    """B against A: the paired bootstrap of the pooled tags (every seed's tweets, paired by seed name when
    both have several), per-seed F1 and differences with their mean, sd and standard error, and when both
    have several seeds Almost Stochastic Order over the seeds' test F1 (``aso_iterations``: deepsig's
    bootstrap iterations)."""
    a, b = read_result(result_a), read_result(result_b)
    check_same_test(a, b)
    if len(a) > 1 and len(b) > 1:
        shared = sorted(set(a) & set(b))
        if not shared:
            raise NotComparable(f"{result_a} and {result_b} share no seed folder name: nothing to pair")
        pairs = [(name, a[name], b[name]) for name in shared]
    else:  # one run against one, or against every seed of the other
        pairs = [(nb if len(b) > 1 else na, ra, rb) for na, ra in a.items() for nb, rb in b.items()]
    per_seed = []
    for name, ra, rb in pairs:
        fa, fb = ra.f1, rb.f1
        per_seed.append({"name": name, "f1_a": fa, "f1_b": fb, "difference": fb - fa})
    counts_a = np.concatenate([ra.counts for _, ra, _ in pairs])
    counts_b = np.concatenate([rb.counts for _, _, rb in pairs])
    result = {"a": str(result_a), "b": str(result_b), "test_sha256": next(iter(a.values())).test_sha256,
              "f1_a": float(f1_of(counts_a.sum(0))), "f1_b": float(f1_of(counts_b.sum(0))),
              "bootstrap": paired_bootstrap(counts_a, counts_b, resamples, seed), "per_seed": per_seed}
    diffs = [row["difference"] for row in per_seed]
    if len(diffs) > 1:
        sd = statistics.stdev(diffs)
        result["seeds"] = {"n": len(diffs), "mean_difference": statistics.fmean(diffs), "sd": sd,
                           "se": sd / math.sqrt(len(diffs))}
    if len(a) > 1 and len(b) > 1:
        f1s_a = [run.f1 for run in a.values()]
        f1s_b = [run.f1 for run in b.values()]
        # Both directions: eps_min is not symmetric (for two close runs both are high), and "B is not
        # better" (eps_min near 1) does not say "A is better" (eps_min_reverse below 0.2).
        result["aso"] = {"eps_min": almost_stochastic_order(f1s_a, f1s_b, seed, aso_iterations),
                         "eps_min_reverse": almost_stochastic_order(f1s_b, f1s_a, seed, aso_iterations),
                         "seeds_a": len(f1s_a), "seeds_b": len(f1s_b), "iterations": aso_iterations}
    return result


def format_comparison(result: dict) -> str:
    """The comparison as a few lines of text (F1 x 100)."""
    boot = result["bootstrap"]
    low, high = boot["ci95"]
    lines = [f"A {result['a']}: test F1 {100 * result['f1_a']:.2f}",
             f"B {result['b']}: test F1 {100 * result['f1_b']:.2f}",
             f"B - A: {100 * boot['difference']:+.2f}  95% CI [{100 * low:+.2f}, {100 * high:+.2f}]  "
             f"p = {boot['p_value']:.4f}  (paired bootstrap over {boot['tweets']} tweets, {boot['resamples']} "
             f"resamples, seed {boot['seed']})"]
    if "seeds" in result:
        lines.append("")
        lines.append(f"{'seed':<12} {'A':>7} {'B':>7} {'B - A':>7}")
        lines += [f"{row['name']:<12} {100 * row['f1_a']:7.2f} {100 * row['f1_b']:7.2f} {100 * row['difference']:+7.2f}"
                  for row in result["per_seed"]]
        s = result["seeds"]
        lines.append(f"over {s['n']} seeds: B - A {100 * s['mean_difference']:+.2f} +- {100 * s['sd']:.2f} (sd), "
                     f"se {100 * s['se']:.2f}")
    if "aso" in result:
        eps, reverse = result["aso"]["eps_min"], result["aso"].get("eps_min_reverse")
        verdict = ("B almost stochastically dominates A" if eps < 0.2 else
                   "A almost stochastically dominates B" if reverse is not None and reverse < 0.2 else
                   "no almost stochastic order")
        reverse_text = "" if reverse is None else f", A over B {reverse:.3f}"
        lines.append(f"Almost Stochastic Order (deepsig) over the seeds' test F1: eps_min B over A {eps:.3f}"
                     f"{reverse_text} ({verdict}; below 0.2: that one is better)")
    return "\n".join(lines)
