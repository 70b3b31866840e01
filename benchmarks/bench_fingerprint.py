"""Fingerprinting throughput: the step cache's file hash against reading the file with ``cat``.

The step cache keys a step on the content hash of its inputs and records one of every output
(``toolkit.execute.cache``, through ``toolkit.core.fsutil.sha256_file``). Per file size, in a
temporary folder, alternating, ``repeat`` times: ``sha256_file(FILE)`` in this process, and
``cat FILE > /dev/null`` in a child process (the read limit; its spawn is included, which only
matters at the smallest size). Each file is read once before timing, so both read it from the
page cache (the files are written just before, as a step writes its outputs): what is compared
is the work per byte, not the disk. Beside them, SHA-256 of the same number of bytes already in
memory (the hash's own CPU limit), which says where the time goes on a miss.

Target: hashing at >= 70 % of cat's throughput. The largest file is capped (1 GB by default)
to spare the disk of a shared machine; the folder is checked for 2x that much free space.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import progress

TARGET = 0.70
MB = 1_000_000
BLOCK = os.urandom(1 << 20)


def _write(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        left = size
        while left > 0:
            handle.write(BLOCK[: min(left, len(BLOCK))])
            left -= len(BLOCK)


def _cat(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run(f"cat '{path}' > /dev/null", shell=True, check=True)
    return time.perf_counter() - start


def _hash(path: Path) -> float:
    from toolkit.core.fsutil import sha256_file

    start = time.perf_counter()
    sha256_file(path)
    return time.perf_counter() - start


def _hash_memory(size: int) -> float:
    """SHA-256 over ``size`` bytes already in memory, 1 MiB at a time as ``sha256_file`` does."""
    digest, left = hashlib.sha256(), size
    view = memoryview(BLOCK)
    start = time.perf_counter()
    while left > 0:
        digest.update(view[: min(left, len(BLOCK))])
        left -= len(BLOCK)
    return time.perf_counter() - start


def run(sizes_mb: Sequence[int] = (10, 100, 1000), repeat: int = 5) -> dict[str, Any]:
    """Per size: medians of hash and cat in seconds, throughputs in MB/s, and their ratio."""
    out: dict[str, Any] = {"sizes_mb": list(sizes_mb), "repeat": repeat, "target": TARGET}
    with tempfile.TemporaryDirectory(prefix="bench-fingerprint-") as tmp:
        free = shutil.disk_usage(tmp).free
        if free < 2 * max(sizes_mb) * MB:
            raise RuntimeError(f"{free / MB:.0f} MB free in {tmp}: too little for the files")
        per_size = {}
        for size_mb in sizes_mb:
            path = Path(tmp) / f"{size_mb}MB.bin"
            _write(path, size_mb * MB)
            _cat(path)  # both timings then read from the page cache alike
            hashes, cats, memory = [], [], []
            progress("fingerprint", f"{size_mb} MB x {repeat}")
            for r in range(repeat):
                first, second = (_hash, _cat) if r % 2 == 0 else (_cat, _hash)
                a, b = first(path), second(path)
                hashes.append(a if first is _hash else b)
                cats.append(b if first is _hash else a)
                memory.append(_hash_memory(size_mb * MB))
            h, c, m = (statistics.median(x) for x in (hashes, cats, memory))
            per_size[str(size_mb)] = {
                "hash_s": round(h, 4),
                "cat_s": round(c, 4),
                "hash_mb_s": round(size_mb / h, 1),
                "cat_mb_s": round(size_mb / c, 1),
                "memory_hash_mb_s": round(size_mb / m, 1),
                "ratio": round(c / h, 3),
            }
            path.unlink()
        out["per_size"] = per_size
    return out


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:]] or [10, 100, 1000]
    print(json.dumps(run(sizes, repeat=3), indent=2))
