"""``--shard I/N``: every N-th image from the I-th, so a job array splits one image set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        """``"I/N"`` with 0 <= I < N; None or empty -> the whole set (0/1)."""
        if not text:
            return cls(0, 1)
        try:
            i, n = (int(part) for part in str(text).split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard {text}: need 0 <= I < N")
        return cls(i, n)

    @property
    def whole(self) -> bool:
        return self.count == 1

    def take(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index::self.count])

    @property
    def manifest_name(self) -> str:
        """Each shard writes its own manifest (no two machines append to one file)."""
        return "manifest.csv" if self.whole else f"manifest.shard-{self.index}-of-{self.count}.csv"
