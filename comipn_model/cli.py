"""``comipn-train``: train Co-MIPN, choose the checkpoint on dev, score test once; ``predict`` tags tweets."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train and score Co-MIPN (being built: see issue 6)."""
