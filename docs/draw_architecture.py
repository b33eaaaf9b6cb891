"""Draw docs/co-mipn.svg, the figure of docs/architecture.md (the Co-MIPN network).

    .venv/bin/python docs/draw_architecture.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# Text stays text in the SVG (small, searchable); a fixed salt keeps element ids stable between redraws.
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "comipn"})
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent / "co-mipn.svg"

TEXT, VISION, NEW, HEAD, LOSS = "#dbe9f6", "#e8e8e8", "#fde9c9", "#d9f0d3", "#f6d5d5"


def box(ax, x, y, w, h, label, color, bold=False, size=8.5):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc=color, ec="#444444", lw=0.9))
    ax.text(x + w / 2, y + h / 2, label, ha="center", va="center", fontsize=size,
            fontweight="bold" if bold else "normal", wrap=True)
    return (x, y, w, h)


def arrow(ax, start, end, label=None, style="-|>", color="#333333", rad=0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=10, color=color, lw=0.9,
                                 connectionstyle=f"arc3,rad={rad}"))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.08, label, fontsize=7, ha="center",
                color="#555555")


def right(b):
    return (b[0] + b[2], b[1] + b[3] / 2)


def left(b):
    return (b[0], b[1] + b[3] / 2)


def top(b):
    return (b[0] + b[2] / 2, b[1] + b[3])


def bottom(b):
    return (b[0] + b[2] / 2, b[1])


def draw(out: Path = OUT) -> Path:
    fig, ax = plt.subplots(figsize=(13, 6.6))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 6.6)
    ax.axis("off")
    col_a, col_b, col_c, w = 2.4, 4.6, 6.8, 2.0  # columns: matching, prompts, text-only / contrastive

    # Inputs
    words = box(ax, 0.1, 5.0, 1.8, 0.8, "tweet words\nw1 .. wn", TEXT, bold=True)
    images = box(ax, 0.1, 0.35, 1.8, 1.0, "image I0\n+ crops I1..Ik\n(k <= 3, mask bits)", VISION, bold=True)

    # Vision side: one frozen tower, features cached once per image
    clip = box(ax, col_a, 0.35, col_b + w - col_a, 0.7, "frozen CLIP ViT (features cached on disk)", VISION)
    arrow(ax, right(images), left(clip))
    patches = box(ax, col_a, 1.5, w, 0.6, "patch tokens (last block)", VISION, size=8)
    cls_tok = box(ax, col_b, 1.5, w, 0.6, "class token of every block", VISION, size=8)
    arrow(ax, (col_a + w / 2, clip[1] + clip[3]), bottom(patches))
    arrow(ax, (col_b + w / 2, clip[1] + clip[3]), bottom(cls_tok))

    match = box(ax, col_a, 2.55, w, 1.05, "(2) dynamic matching\ncos S[t, v], r_v = max_t S,\n"
                "weighted pool + gate\nover images", NEW, size=7.5)
    prefix = box(ax, col_b, 2.55, w, 1.05, "(1) visual prefix:\nMLP -> key/value\nprefix per layer", NEW, size=8)
    contra = box(ax, col_c, 1.5, w, 0.6, "(4) contrastive: InfoNCE", NEW, size=8)
    arrow(ax, top(patches), bottom(match))
    arrow(ax, top(cls_tok), bottom(prefix))
    arrow(ax, right(cls_tok), left(contra))

    # Text side: one encoder, three paths
    enc = box(ax, col_a - 0.2, 4.2, col_c + w - col_a + 0.4, 2.0, "", TEXT)
    ax.text(col_a - 0.05, 5.95, "BERT-architecture text encoder (WordPiece; a word = its first sub-token)",
            fontsize=8.5, va="center")
    path_b = box(ax, col_a, 5.0, w, 0.65, "path (b): matched\nprompts", "#c6dbef", size=8)
    path_a = box(ax, col_b, 5.0, w, 0.65, "path (a): [prefix ; text]", "#c6dbef", size=8)
    box(ax, col_c, 5.0, w, 0.65, "path (c): text only", "#c6dbef", size=8)
    ax.text((col_a + col_c + w) / 2, 4.5, "paths share the encoder's weights "
            "(or one copy each: --separate-path-encoders)", fontsize=7.2, ha="center", color="#333333")
    arrow(ax, right(words), (enc[0], words[1] + 0.4))
    arrow(ax, (col_a + 1.5, match[1] + match[3]), (col_a + 1.5, path_b[1]), label=None)
    arrow(ax, (col_a + 0.5, enc[1]), (col_a + 0.5, match[1] + match[3]), color="#777777")
    ax.text(col_a + 0.55, 3.85, "text states", fontsize=7, color="#777777")
    arrow(ax, top(prefix), bottom(path_a))
    arrow(ax, (col_c + w / 2, enc[1]), top(contra))
    ax.text(col_c + w / 2 + 0.08, 3.2, "[CLS]", fontsize=7, color="#555555")

    # Idea 3: fusion, then the head
    fuse = box(ax, 9.3, 4.75, 1.6, 1.1, "(3) token-wise\ngate over paths\nh = sum g_p h_p", NEW, size=8)
    arrow(ax, right(enc), left(fuse))
    head = box(ax, 11.2, 4.75, 1.7, 1.1, "linear emissions\n+ CRF (BIO-\nconstrained Viterbi)", HEAD, size=8)
    arrow(ax, right(fuse), left(head))
    out_lbl = box(ax, 11.85, 3.4, 1.05, 0.75, "BIO tags\nper word", HEAD, size=8)
    arrow(ax, (12.37, head[1]), top(out_lbl))

    loss = box(ax, 9.3, 1.4, 3.6, 0.8, "loss = (1 - lambda) CRF NLL\n+ lambda InfoNCE   (lambda = 0.2)", LOSS,
               size=8)
    arrow(ax, right(contra), left(loss))
    arrow(ax, (11.5, head[1]), (11.5, loss[1] + loss[3]))
    ax.text(11.0, 3.0, "CRF NLL", fontsize=7, color="#555555")

    ax.text(0.1, 0.05, "Switches: --use-prompt (1), --use-dynamic-matching (2), fusion (3) is on with (1) or (2), "
            "--use-contrastive (4), --aux-k N crops.  All off = a text-only BERT-CRF.", fontsize=7.5,
            color="#333333")
    fig.tight_layout()
    # No timestamp in the SVG, so redrawing an unchanged figure changes no byte.
    fig.savefig(out, metadata={"Date": None} if out.suffix == ".svg" else None)
    plt.close(fig)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    sys.stderr.write(f"wrote {draw(target)}\n")
