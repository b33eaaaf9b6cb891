"""JSON Lines input: one object a line, blank lines skipped, every problem named ``path:line``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator


def json_lines(path: str | os.PathLike, error: type[ValueError] = ValueError) -> Iterator[tuple[int, str, object]]:
    """``(line number, "path:line", parsed value)`` for each non-blank line of ``path`` (a BOM is
    allowed); a line that is not JSON raises ``error`` naming ``path:line``."""
    path = Path(path)
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield lineno, where, json.loads(line)
            except json.JSONDecodeError as err:
                raise error(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
