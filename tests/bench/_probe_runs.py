"""What both visual-signal probes share (``bench_probe.py``, ``bench_probe_texture.py``): each configuration
trained **through the product** with ``comipn-train --seeds`` into ``<work>/runs/<variant>-<config>[-<tag>]/``
(``seed-<k>/`` and ``seeds.json``), then compared with text-only by ``comipn-train compare`` (saved as
``compare-to-text.json`` beside ``seeds.json``), and the markdown table of the whole plan.

A run folder already there is resumed, and ``--seeds 5`` on a folder of 3 seeds adds seeds 4 and 5
(``comipn-train --resume --seeds``); a folder that holds every seed asked for is left as it is.
Configurations run side by side in ``jobs`` worker processes of ``threads`` torch threads each (on 2 cores,
two 1-thread runs get more done than one 2-thread run: the probe's matrices are small).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import torch

log = logging.getLogger("probe_runs")

# comipn-train options of each configuration: every module alone, all switches, text-only.
CONFIGS = {
    "text": ["--text-only"],
    "prompt": ["--no-use-dynamic-matching", "--no-use-contrastive"],
    "matching": ["--no-use-prompt", "--no-use-contrastive"],
    "contrastive": ["--no-use-prompt", "--no-use-dynamic-matching"],
    "all": [],
}
# Relative cost of one run, to start the longest first (seconds of a quiet 2-thread run, rounded).
RUN_COST = {"text": 40, "contrastive": 60, "prompt": 85, "matching": 90, "all": 120}


@dataclass
class ProbeRuns:
    """One probe's plan: where it works, what ``comipn-train`` gets, and how many seeds."""

    work: Path
    seeds: str  # comipn-train --seeds: a count (5) or a list (1,2,3)
    common: list[str]  # comipn-train options every run gets (data, model, epochs, cache)
    baseline_variant: str  # whose text-only run every configuration is compared with
    tag: str = ""  # a suffix of the run folders of this plan's image configurations (text-only has none)
    extra: list[str] = field(default_factory=list)  # more comipn-train options for the tagged runs
    resamples: int = 10_000

    def run_dir(self, variant: str, config: str) -> Path:
        suffix = f"-{self.tag}" if self.tag and config != "text" else ""
        return self.work / "runs" / f"{variant}-{config}{suffix}"


def wanted_seeds(seeds: str) -> list[int]:
    from comipn_model.cli.option_types import parse_seeds

    return parse_seeds(seeds)


def train_seeds(plan: ProbeRuns, variant: str, config: str, root: Path) -> tuple[str, str, float]:
    """``comipn-train --seeds`` of one configuration on the variant's dataset ``root``: new, resumed, or
    given more seeds; nothing when it holds every seed asked for. Returns (variant, config, seconds)."""
    from click.testing import CliRunner

    from comipn_model.cli import main

    run_dir = plan.run_dir(variant, config)
    wanted = wanted_seeds(plan.seeds)
    summary = run_dir / "seeds.json"
    if summary.is_file() and set(wanted) <= set(json.loads(summary.read_text())["seeds"]):
        return variant, config, 0.0
    if (run_dir / "config.json").is_file():
        held = json.loads((run_dir / "config.json").read_text())["seeds"]
        seeds = held + [k for k in wanted if k not in held]
        argv = ["--run-dir", str(run_dir), "--resume", "--seeds", ",".join(map(str, seeds)), "--no-progress"]
    else:
        argv = ["--data-root", str(root), *plan.common, "--run-dir", str(run_dir), "--seeds", plan.seeds,
                "--no-progress", *CONFIGS[config], *(plan.extra if config != "text" else [])]
    log.info("%s-%s: comipn-train %s", variant, config, " ".join(argv))
    start = time.perf_counter()
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"comipn-train {' '.join(argv)} failed ({result.exit_code}):\n{result.output[-3000:]}")
    return variant, config, time.perf_counter() - start


def compare_to_text(plan: ProbeRuns, variant: str, config: str) -> dict:
    """``comipn-train compare TEXT RUN --json``, saved as the run's ``compare-to-text.json``."""
    from click.testing import CliRunner

    from comipn_model.cli import main

    run_dir = plan.run_dir(variant, config)
    text_dir = plan.run_dir(plan.baseline_variant, "text")
    result = CliRunner().invoke(main, ["compare", str(text_dir), str(run_dir), "--resamples", str(plan.resamples),
                                       "--json"], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"comipn-train compare failed ({result.exit_code}):\n{result.output[-3000:]}")
    comparison = json.loads(result.output)
    (run_dir / "compare-to-text.json").write_text(json.dumps(comparison, indent=2))
    return comparison


def _worker_init(threads: int) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    _end_with_parent()


def _end_with_parent() -> None:
    """On Linux, ask the kernel to kill this worker when the probe's main process dies: a probe killed
    by name (``kill``, a timeout) otherwise leaves its workers training for nobody, on the same cores.
    SIGKILL, since comipn-train takes SIGTERM as "stop after this step and save"; ``--seeds`` resumes
    what a killed worker left."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux / no glibc: Ctrl-C still reaches the whole process group


def run_plan(plan: ProbeRuns, pairs: list[tuple[str, str]], roots: dict[str, Path], jobs: int = 2,
             threads: int | None = None) -> None:
    """Every (variant, configuration) of ``pairs`` through ``--seeds`` (text-only of the baseline variant
    included: every comparison needs it), then each compared with text-only."""
    if (plan.baseline_variant, "text") not in pairs:
        pairs = [(plan.baseline_variant, "text"), *pairs]
    threads = threads or max(1, torch.get_num_threads() // jobs)
    start = time.perf_counter()
    ordered = sorted(pairs, key=lambda p: RUN_COST[p[1]], reverse=True)  # longest first: jobs end together

    def done(variant: str, config: str, seconds: float) -> None:
        log.info("%s-%s: %s (%.0f s so far)", variant, config,
                 "had every seed already" if seconds == 0 else f"{seconds:.0f} s", time.perf_counter() - start)

    if jobs == 1:
        torch.set_num_threads(threads)
        for variant, config in ordered:
            done(*train_seeds(plan, variant, config, roots[variant]))
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init, initargs=(threads,)) as pool:
            futures = [pool.submit(train_seeds, plan, v, c, roots[v]) for v, c in ordered]
            for future in as_completed(futures):
                done(*future.result())
    for variant, config in pairs:
        if config != "text":
            compare_to_text(plan, variant, config)
    log.info("%d configurations in %.0f s (%d job(s) of %d thread(s))", len(pairs), time.perf_counter() - start,
             jobs, threads)


def table(plan: ProbeRuns, pairs: list[tuple[str, str]]) -> str:
    """Markdown: test F1 (x 100) mean +- sd over seeds, each seed's figure, and against text-only
    (``comipn-train compare``) the mean paired difference with its se, the bootstrap p-value of the
    pooled tags, and ASO's eps_min (0: B better almost surely; 1: A)."""
    lines = ["| variant | configuration | seeds | test F1 (mean +- sd) | per seed | vs text-only (paired, +- se) "
             "| per seed | p | ASO eps_min |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    if (plan.baseline_variant, "text") not in pairs:
        pairs = [(plan.baseline_variant, "text"), *pairs]
    for variant, config in pairs:
        run_dir = plan.run_dir(variant, config)
        if not (run_dir / "seeds.json").is_file():
            continue
        summary = json.loads((run_dir / "seeds.json").read_text())
        f1 = summary["test_f1"]
        each = " / ".join(f"{100 * row['test']['f1']:.1f}" for row in summary["per_seed"])
        name = config + (f" ({plan.tag})" if plan.tag and config != "text" else "")
        row = f"| {variant} | {name} | {f1['n']} | {100 * f1['mean']:.1f} +- {100 * f1['sd']:.1f} | {each} |"
        comparison = run_dir / "compare-to-text.json"
        if config != "text" and comparison.is_file():
            c = json.loads(comparison.read_text())
            seeds = c.get("seeds")
            diff = (f"{100 * seeds['mean_difference']:+.1f} +- {100 * seeds['se']:.1f}" if seeds
                    else f"{100 * c['bootstrap']['difference']:+.1f}")
            per_seed = " / ".join(f"{100 * r['difference']:+.1f}" for r in c.get("per_seed", []))
            aso = f"{c['aso']['eps_min']:.2f}" if "aso" in c else ""
            row += f" {diff} | {per_seed} | {c['bootstrap']['p_value']:.4f} | {aso} |"
        else:
            row += " | | | |"
        lines.append(row)
    return "\n".join(lines)
