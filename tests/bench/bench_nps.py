"""Benchmark of `comipn-prep extract-nps` (textblob backend) on the real Twitter-2015 / 2017 splits.

Prints, per dataset: entity coverage, mean NP length and NP token share per split and for all splits,
beside the plain TextBlob chunker's figures; then tweets/s on 1 and N workers and of the plain chunker,
each the median of several runs, measured side by side in this one run.

    .venv/bin/python tests/bench/bench_nps.py [--data data] [--repeats 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from comipn_prep.conll import read_conll  # noqa: E402
from comipn_prep.layout import SPLITS  # noqa: E402
from comipn_prep.nps.backends import TextBlobBackend, spans_from_iob  # noqa: E402
from comipn_prep.nps.coverage import entity_coverage, merge_coverage, np_figures  # noqa: E402
from comipn_prep.nps.extract import ExtractConfig, _gc_paused, extract_tweets  # noqa: E402
from comipn_prep.nps.io import NounPhrase, TweetNPs  # noqa: E402

TARGETS = {"twitter2015": 0.980, "twitter2017": 0.970}


def plain_textblob(tweets):
    """TextBlob's own parse of each tweet (string in, string out), its NP chunks as they come."""
    from textblob.en import parse

    out = []
    for t in tweets:
        # The parser escapes "/" inside words; splitting on " " keeps one word per token (tokens hold no
        # spaces once whitespace-only tokens are replaced, as here).
        text = " ".join(tok if tok.strip() else "_" for tok in t.tokens)
        words = parse(text, tokenize=False, tags=True, chunks=True).split(" ")
        chunks = [w.rsplit("/", 3)[2] if w.count("/") >= 3 else "O" for w in words]
        spans = spans_from_iob(chunks)
        out.append(TweetNPs(t.imgid, t.tokens, [NounPhrase(s, e, "") for s, e in spans]))
    return out


def cpu_timed(fn):
    """(wall s, this process's CPU s, CPU s of child processes that ended meanwhile)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, cpu, (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def fmt_row(name, cov, fig):
    return (f"  {name:<7} {fig['tweets']:>5} tweets  coverage {100 * cov['coverage']:6.2f}%  "
            f"mean NP {fig['mean_np_length']:.2f}  NP tokens {100 * fig['np_token_share']:5.1f}%")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--datasets", default="twitter2015,twitter2017")
    args = ap.parse_args()

    backend = TextBlobBackend()
    backend.analyse([["warm", "up"]])  # the lexicon loads on first use
    ok = True
    for ds in args.datasets.split(","):
        print(f"== {ds} (textblob {backend.version})")
        all_tweets, covs, plain_covs, items_all, plain_all = [], [], [], [], []
        for split in SPLITS:
            tweets = read_conll(Path(args.data) / ds / f"{split}.txt").tweets
            items = extract_tweets(tweets, backend, ExtractConfig(backend="textblob"), progress=False)
            plain = plain_textblob(tweets)
            cov, pcov = entity_coverage(tweets, items), entity_coverage(tweets, plain)
            print(fmt_row(split, cov, np_figures(items)) + "   | plain " +
                  fmt_row("", pcov, np_figures(plain)).split("tweets", 1)[1].strip())
            all_tweets += tweets
            covs.append(cov)
            plain_covs.append(pcov)
            items_all += items
            plain_all += plain
        cov, fig = merge_coverage(covs), np_figures(items_all)
        pcov, pfig = merge_coverage(plain_covs), np_figures(plain_all)
        print(fmt_row("all", cov, fig) + "   | plain " + fmt_row("", pcov, pfig).split("tweets", 1)[1].strip())
        print("  per type: " + ", ".join(f"{k} {100 * v['coverage']:.1f}%" for k, v in cov["per_type"].items()
                                         if v["coverage"] is not None))
        n = len(all_tweets)
        def ours(workers):
            return extract_tweets(all_tweets, backend, ExtractConfig(workers=workers), progress=False)

        def plain_no_gc():
            with _gc_paused():
                plain_textblob(all_tweets)

        # Interleaved, so that load from other processes hits every variant alike.
        one_all, many_all, base_all, base_nogc_all = [], [], [], []
        for _ in range(args.repeats):
            one_all.append(cpu_timed(lambda: ours(1)))
            many_all.append(cpu_timed(lambda: ours(args.workers)))
            base_all.append(cpu_timed(lambda: plain_textblob(all_tweets)))
            base_nogc_all.append(cpu_timed(plain_no_gc))

        def med(runs, k):
            return statistics.median(r[k] for r in runs)

        one, many = med(one_all, 0), med(many_all, 0)
        base, base_nogc = med(base_all, 0), med(base_nogc_all, 0)
        print(f"  speed ({n} tweets, median of {args.repeats}): 1 worker {n / one:,.0f} tweets/s; "
              f"{args.workers} workers {n / many:,.0f} tweets/s (x{one / many:.2f}); "
              f"plain TextBlob parse {n / base:,.0f} tweets/s ({n / base_nogc:,.0f} with the GC paused)")
        # CPU time does not grow when other processes share the cores, wall time does: tweets per
        # CPU-second is what one free core would do; the N-worker run's parent + children CPU says how
        # much work parallelism adds (equal to 1 worker's = no overhead; gain then near N on N free cores).
        parent, children = med(many_all, 1), med(many_all, 2)
        print(f"  CPU: 1 worker {n / med(one_all, 1):,.0f} tweets per CPU-s; plain TextBlob "
              f"{n / med(base_all, 1):,.0f}; {args.workers} workers: parent {parent:.2f} s + workers "
              f"{children:.2f} s vs 1 worker {med(one_all, 1):.2f} s "
              f"(gain on {args.workers} free cores if the parent's part overlapped nothing: "
              f"x{med(one_all, 1) / (parent + children / args.workers):.2f}; if it all overlapped: "
              f"x{med(one_all, 1) / max(parent, children / args.workers):.2f})")
        print(f"  1-worker runs, wall s: {', '.join(f'{r[0]:.3f}' for r in one_all)}")
        met = (cov["coverage"] >= TARGETS.get(ds, 0) and fig["mean_np_length"] <= 2.5
               and fig["np_token_share"] <= 0.60 and n / one >= 5000)
        ok &= met
        print(f"  targets (coverage >= {100 * TARGETS.get(ds, 0):.1f}%, mean <= 2.5, share <= 60%, "
              f">= 5,000 tweets/s): {'met' if met else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
