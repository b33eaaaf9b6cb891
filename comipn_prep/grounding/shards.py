"""``--shard I/N``: every N-th image from the I-th, so a job array splits one image set; under ``torchrun``
each process takes its share of that shard by itself (:meth:`Shard.for_process`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

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

    def for_process(self, env: Mapping[str, str] | None = None) -> "Shard":
        """This process's shard under ``torchrun`` (``RANK`` r of ``WORLD_SIZE`` W in the environment):
        shard ``I + r * N`` of ``N * W`` (shard I/N's items split W ways), so W processes on each of N
        machines of a job array split the set between them with no collective (each writes its own
        manifest and lock, as ``--shard`` does; resume with the same N and W). Outside torchrun (or
        W = 1): this shard as it is."""
        env = os.environ if env is None else env
        world = int(env.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return self
        rank = int(env.get("RANK", "0") or 0)
        if not 0 <= rank < world:
            raise ValueError(f"RANK {rank} is not within WORLD_SIZE {world}")
        return Shard(self.index + rank * self.count, self.count * world)

    @property
    def whole(self) -> bool:
        return self.count == 1

    def take(self, items: Sequence[T]) -> list[T]:
        return list(items[self.index::self.count])

    @property
    def manifest_name(self) -> str:
        """Each shard writes its own manifest (no two machines append to one file)."""
        return "manifest.csv" if self.whole else f"manifest.shard-{self.index}-of-{self.count}.csv"
