"""The ablation table from an ablation's runs (:mod:`.ablation`): per row the test F1, P and R over the
seeds (mean and sd), the paired difference to the baseline row (per-seed mean and se, the paired bootstrap's
95% interval and p, Almost Stochastic Order; :func:`comipn_model.training.compare.compare`), the best dev
epochs and the recipe's fingerprint; the splits' fingerprints under it. Written as Markdown, LaTeX
(booktabs), CSV, JSON and a PNG plot.

Every number is read from the runs' own files (``seeds.json``, ``test_predictions.txt``,
``test_report.json``): the table is a view of the runs, never a second computation of their scores.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

from comipn_prep.conll import atomic_write_bytes

from comipn_model.saved import run_folder as rf
from comipn_model.training.ablation import AblationRow, recipe_fingerprint
from comipn_model.training.compare import compare
from comipn_model.training.seeds import SEEDS_SUMMARY

TABLE_FILES = {"markdown": "ablation.md", "latex": "ablation.tex", "csv": "ablation.csv", "json": "ablation-table.json",
               "plot": "ablation.png"}


def _fingerprints(folder: Path, seeds: list[int]) -> dict:
    """The files a row's first seed read: sha256 (and known version) of each split and aux dict."""
    report = rf.RunFolder(folder / f"seed-{seeds[0]}").read_json(rf.TEST_REPORT)
    data = report.get("data") or {}
    return {kind: {split: {"sha256": entry.get("sha256"), "known_as": entry.get("known_as")}
                   for split, entry in (data.get(kind) or {}).items() if entry} for kind in ("splits", "aux_dicts")}


def collect(rows: list[AblationRow], baseline: str, *, resamples: int = 10_000, seed: int = 0,
            aso_iterations: int = 1000) -> dict:
    """The table's content: one entry per row, in the rows' order, from their run folders."""
    by_name = {row.name: row for row in rows}
    if baseline not in by_name:
        raise ValueError(f"the baseline row {baseline!r} is not among the rows ({', '.join(by_name)})")
    entries = []
    fingerprints = None
    for row in rows:
        summary = rf.RunFolder(row.folder).read_json(SEEDS_SUMMARY)
        seeds = summary["seeds"]
        row_prints = _fingerprints(row.folder, seeds)
        if fingerprints is None:
            fingerprints = row_prints
        elif row_prints["splits"] != fingerprints["splits"]:
            raise ValueError(f"{row.folder}: its runs read other split files than {rows[0].folder}'s: the rows "
                             f"of one table must be scored on the same data")
        entry = {"name": row.name, "label": row.label, "folder": str(row.folder), "seeds": seeds,
                 "recipe": recipe_fingerprint(row.cfg),
                 "test_f1": summary["test_f1"], "test_precision": summary["test_precision"],
                 "test_recall": summary["test_recall"], "test_f1_per_type": summary["test_f1_per_type"],
                 "dev_f1": summary["dev_f1"], "best_epochs": [r["best_epoch"] for r in summary["per_seed"]],
                 "test_f1_per_seed": [r["test"]["f1"] for r in summary["per_seed"]], "vs_baseline": None}
        if row.name != baseline:
            result = compare(by_name[baseline].folder, row.folder, resamples=resamples, seed=seed,
                             aso_iterations=aso_iterations)
            entry["vs_baseline"] = {"bootstrap": result["bootstrap"], "seeds": result.get("seeds"),
                                    "per_seed": [r["difference"] for r in result["per_seed"]],
                                    "aso_eps_min": (result.get("aso") or {}).get("eps_min"),
                                    "aso_eps_min_baseline": (result.get("aso") or {}).get("eps_min_reverse")}
        entries.append(entry)
    return {"baseline": baseline, "baseline_label": by_name[baseline].label, "rows": entries,
            "fingerprints": fingerprints, "resamples": resamples, "bootstrap_seed": seed}


# -- the text forms ------------------------------------------------------------------------------------
def _pm(stats: dict) -> str:
    return f"{100 * stats['mean']:.2f} ± {100 * stats['sd']:.2f}"


def _epochs(epochs: list) -> str:
    known = [e for e in epochs if e is not None]
    if not known:
        return "-"
    low, high = min(known), max(known)
    return f"{statistics.median(known):g} ({low}-{high})" if low != high else str(low)


def _difference(entry: dict) -> tuple[str, str, str, str]:
    """Δ (mean ± se over seeds), the bootstrap's 95% interval and p, and ASO's eps_min, as text."""
    vs = entry["vs_baseline"]
    if vs is None:
        return "(baseline)", "", "", ""
    seeds = vs["seeds"]
    boot = vs["bootstrap"]
    if seeds:
        delta = f"{100 * seeds['mean_difference']:+.2f} ± {100 * seeds['se']:.2f}"
    else:
        delta = f"{100 * boot['difference']:+.2f}"
    low, high = boot["ci95"]
    aso = "" if vs["aso_eps_min"] is None else f"{vs['aso_eps_min']:.2f}"
    if vs.get("aso_eps_min_baseline") is not None:
        aso += f" / {vs['aso_eps_min_baseline']:.2f}"
    return delta, f"[{100 * low:+.2f}, {100 * high:+.2f}]", f"{boot['p_value']:.4f}", aso


def _splits_line(table: dict) -> str:
    splits = table["fingerprints"]["splits"]
    parts = [f"{name} {entry['sha256'][:12]}" + (f" ({entry['known_as']})" if entry.get("known_as") else "")
             for name, entry in sorted(splits.items()) if entry.get("sha256")]
    return ", ".join(parts)


def to_markdown(table: dict) -> str:
    base = table["baseline_label"]
    lines = [f"| configuration | test F1 | P | R | Δ F1 vs {base} (mean ± se) | 95% CI (bootstrap) | p "
             f"| ASO ε (row ≻ {base} / {base} ≻ row) | best dev epoch | recipe |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for entry in table["rows"]:
        delta, ci, p, aso = _difference(entry)
        lines.append(f"| {entry['label']} | {_pm(entry['test_f1'])} | {_pm(entry['test_precision'])} | "
                     f"{_pm(entry['test_recall'])} | {delta} | {ci} | {p} | {aso} | {_epochs(entry['best_epochs'])} | "
                     f"`{entry['recipe']}` |")
    seeds = table["rows"][0]["seeds"]
    lines += ["", f"Test scores x 100, mean ± sd over seeds {','.join(map(str, seeds))}; Δ: paired by seed, its "
              f"standard error; 95% CI and p: paired bootstrap over the test tweets ({table['resamples']} "
              f"resamples, seed {table['bootstrap_seed']}); ASO ε: deepsig's eps_min that the row "
              f"is better than {base}, then that {base} is better than the row (below 0.2: it is); best dev "
              f"epoch: median (range). Splits (sha256): {_splits_line(table)}."]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(table: dict) -> str:
    """A booktabs table (``\\usepackage{booktabs}``), F1 / P / R as mean $\\pm$ sd, Δ with its se and p."""
    def pm(stats: dict) -> str:
        return f"${100 * stats['mean']:.2f} \\pm {100 * stats['sd']:.2f}$"

    lines = [r"\begin{tabular}{lccccc}", r"\toprule",
             r"Configuration & F1 & P & R & $\Delta$F1 & $p$ \\", r"\midrule"]
    for entry in table["rows"]:
        vs = entry["vs_baseline"]
        if vs is None:
            delta, p = "--", "--"
        else:
            seeds = vs["seeds"]
            value = seeds["mean_difference"] if seeds else vs["bootstrap"]["difference"]
            delta = f"${100 * value:+.2f}" + (f" \\pm {100 * seeds['se']:.2f}$" if seeds else "$")
            p = f"{vs['bootstrap']['p_value']:.3f}"
        lines.append(f"{_latex(entry['label'])} & {pm(entry['test_f1'])} & {pm(entry['test_precision'])} & "
                     f"{pm(entry['test_recall'])} & {delta} & {p} \\\\")
        if entry["name"] == table["baseline"] and entry is table["rows"][0]:
            lines.append(r"\midrule")
    seeds = table["rows"][0]["seeds"]
    lines += [r"\bottomrule", r"\end{tabular}",
              f"% Test scores x 100, mean $\\pm$ sd over seeds {','.join(map(str, seeds))}; Delta F1 against "
              f"{_latex(table['baseline_label'])}, paired by seed ($\\pm$ se); p: paired bootstrap over the test "
              f"tweets ({table['resamples']} resamples). Splits (sha256): {_latex(_splits_line(table))}."]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ["row", "label", "seeds", "test_f1_mean", "test_f1_sd", "test_precision_mean", "test_precision_sd",
               "test_recall_mean", "test_recall_sd", "dev_f1_mean", "dev_f1_sd", "delta_f1_mean", "delta_f1_se",
               "delta_f1_pooled", "ci95_low", "ci95_high", "p_value", "aso_eps_min", "aso_eps_min_baseline",
               "best_epochs", "test_f1_per_seed", "recipe"]


def to_csv(table: dict) -> str:
    """One line per row; scores as fractions (0-1), lists joined by spaces."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in table["rows"]:
        vs = entry["vs_baseline"] or {}
        seeds = vs.get("seeds") or {}
        boot = vs.get("bootstrap") or {}
        writer.writerow({
            "row": entry["name"], "label": entry["label"], "seeds": " ".join(map(str, entry["seeds"])),
            "test_f1_mean": entry["test_f1"]["mean"], "test_f1_sd": entry["test_f1"]["sd"],
            "test_precision_mean": entry["test_precision"]["mean"], "test_precision_sd": entry["test_precision"]["sd"],
            "test_recall_mean": entry["test_recall"]["mean"], "test_recall_sd": entry["test_recall"]["sd"],
            "dev_f1_mean": entry["dev_f1"]["mean"], "dev_f1_sd": entry["dev_f1"]["sd"],
            "delta_f1_mean": seeds.get("mean_difference", ""), "delta_f1_se": seeds.get("se", ""),
            "delta_f1_pooled": boot.get("difference", ""),
            "ci95_low": boot["ci95"][0] if boot else "", "ci95_high": boot["ci95"][1] if boot else "",
            "p_value": boot.get("p_value", ""),
            "aso_eps_min": "" if vs.get("aso_eps_min") is None else vs["aso_eps_min"],
            "aso_eps_min_baseline": "" if vs.get("aso_eps_min_baseline") is None else vs["aso_eps_min_baseline"],
            "best_epochs": " ".join(str(e) for e in entry["best_epochs"]),
            "test_f1_per_seed": " ".join(f"{f:.6f}" for f in entry["test_f1_per_seed"]), "recipe": entry["recipe"]})
    return buffer.getvalue()


def plot(table: dict) -> bytes:
    """Per row the mean test F1 with its 95% interval over the seeds (Student's t) and each seed's score
    as a dot; the baseline's mean as a dashed line. PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    rows = table["rows"]
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.4))
    for y, entry in enumerate(rows):
        scores = [100 * f for f in entry["test_f1_per_seed"]]
        mean = statistics.fmean(scores)
        half = 0.0
        if len(scores) > 1:
            half = stats.t.ppf(0.975, len(scores) - 1) * statistics.stdev(scores) / math.sqrt(len(scores))
        colour = "tab:blue" if entry["name"] != table["baseline"] else "tab:red"
        ax.errorbar([mean], [y], xerr=[[half], [half]], fmt="o", color=colour, capsize=4, markersize=6)
        ax.scatter(scores, [y] * len(scores), s=12, color="grey", alpha=0.6, zorder=3)
        if entry["name"] == table["baseline"]:
            ax.axvline(mean, color="tab:red", linestyle="--", linewidth=1, alpha=0.7)
    ax.set_yticks(range(len(rows)), [entry["label"] for entry in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"test F1 x 100 (mean, 95% interval over {len(rows[0]['seeds'])} seeds; dots: seeds)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def write(table: dict, out: str | Path) -> dict[str, Path]:
    """Every form of the table into ``out``; returns the files by form."""
    out = Path(out)
    written = {}
    forms = {"markdown": to_markdown(table).encode(), "latex": to_latex(table).encode(), "csv": to_csv(table).encode(),
             "json": (json.dumps(table, indent=2, sort_keys=True) + "\n").encode(), "plot": plot(table)}
    for form, content in forms.items():
        path = out / TABLE_FILES[form]
        atomic_write_bytes(path, content)
        written[form] = path
    return written
