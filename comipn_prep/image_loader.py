"""A prefetching ``torch.utils.data.DataLoader`` of image files that hands batches of ``(3, h, w)`` uint8
tensors on the device to the grounding driver and the feature-cache fill.

Worker processes read the files (and the headers :mod:`comipn_prep.decode` checks), ``prefetch``
batches ahead of the consumer. Where the device is a GPU, JPEGs travel as their bytes, in pinned
memory, and are decoded there in one batched ``decode_jpeg`` call; on a CPU the workers decode them
(torchvision, the same pixels as Pillow), so the decoding runs beside the models instead of before them.
Images Pillow decides (PNG, GIF, WebP, CMYK, refused JPEGs) are decoded by the workers either way. An
image that cannot be read is a record with load_image's status and message naming the file, never an
exception out of the loader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from .decode import Encoded, decode_encoded, read_image
from .images import DEFAULT_MAX_PIXELS, ImageLoadError


@dataclass
class LoadedImage:
    """One file of a batch: its pixels on the device, or why there are none."""

    index: int  # position in the paths given
    tensor: torch.Tensor | None  # (3, h, w) uint8
    status: str = "ok"  # or load_image's: missing, unreadable, too_large
    reason: str = ""


class _Files(Dataset):
    """What a worker makes of one path: decoded pixels, a JPEG's bytes, or an error record (all picklable)."""

    def __init__(self, paths: Sequence[str | os.PathLike | None], host_decode: bool, max_pixels: int):
        self.paths = [None if p is None else str(p) for p in paths]
        self.host_decode = host_decode
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        path = self.paths[i]
        if path is None:
            return {"index": i, "status": "missing", "reason": "no image file"}
        try:
            got = read_image(Path(path), host_decode=self.host_decode, max_pixels=self.max_pixels)
        except ImageLoadError as err:
            return {"index": i, "status": err.status, "reason": str(err)}
        if isinstance(got, Encoded):
            return {"index": i, "data": got.data, "orientation": got.orientation, "grey": got.grey, "path": path}
        return {"index": i, "pixels": got}


def _as_list(batch: list) -> list:
    return batch  # images differ in size: nothing to stack


def iter_images(paths: Sequence[str | os.PathLike | None], batch_size: int, device: str | torch.device = "cpu",
                workers: int = 2, prefetch: int = 2,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[list[LoadedImage]]:
    """Batches of ``LoadedImage`` in the order of ``paths`` (``None``: a missing image); ``workers`` = 0
    reads in this process. ``prefetch`` batches per worker are read ahead."""
    device = torch.device(device)
    on_gpu = device.type == "cuda"
    if on_gpu and device.index is not None and device.index != torch.cuda.current_device():
        # The loader's pinning thread works on the current device: under torchrun (cuda:LOCAL_RANK) every
        # process would otherwise open a context on GPU 0 as well.
        torch.cuda.set_device(device)
    workers = min(max(0, workers), os.cpu_count() or 1)  # more processes than cores only contend
    loader = DataLoader(_Files(paths, host_decode=not on_gpu, max_pixels=max_pixels), batch_size=max(1, batch_size),
                        shuffle=False, num_workers=workers, collate_fn=_as_list, pin_memory=on_gpu,
                        prefetch_factor=max(1, prefetch) if workers > 0 else None)
    for batch in loader:
        encoded = [r for r in batch if "data" in r]
        decoded: dict[int, torch.Tensor | ImageLoadError] = {}
        if encoded:
            try:
                for r, image in zip(encoded, decode_encoded(
                        [Encoded(r["path"], r["data"], r["orientation"], r["grey"]) for r in encoded], device)):
                    decoded[r["index"]] = image
            except ImageLoadError:  # one refused file whose Pillow decoding failed too: one at a time
                for r in encoded:
                    try:
                        decoded[r["index"]] = decode_encoded(
                            [Encoded(r["path"], r["data"], r["orientation"], r["grey"])], device)[0]
                    except ImageLoadError as err:
                        decoded[r["index"]] = err
        out = []
        for r in batch:
            i = r["index"]
            got = decoded.get(i, r.get("pixels"))
            if isinstance(got, ImageLoadError):
                out.append(LoadedImage(i, None, got.status, str(got)))
            elif got is None:
                out.append(LoadedImage(i, None, r["status"], r["reason"]))
            else:
                out.append(LoadedImage(i, got.to(device, non_blocking=True)))
        yield out
