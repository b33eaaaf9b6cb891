"""Values of options that more than one command takes, parsed as the command line writes them."""

from __future__ import annotations

import click


def parse_seeds(value: str | None) -> list[int] | None:
    """``--seeds``: a list (``1,2,3``) or a count (``5``: the seeds 1 to 5)."""
    if value is None:
        return None
    try:
        parts = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: seeds separated by commas (1,2,3) or a count (5)") from None
    if len(parts) == 1 and "," not in value:
        if parts[0] < 1:
            raise click.BadParameter(f"{value!r}: a count of seeds is at least 1")
        return list(range(1, parts[0] + 1))
    return parts
