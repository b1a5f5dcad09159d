"""The on-disk store of embeddings: numpy only (no torch), so web views can read it.

`EmbeddingStore` keeps one append-only float16 matrix + id array per encoder key (memory-mapped
for reading), so 100,000 × 384 vectors are 77 MB on disk and one `np.memmap` away, never a DB
row per number.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def safe_key(key: str) -> str:
    """An encoder key usable as a folder name on every OS."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", key)


class EmbeddingStore:
    """Append-only vectors for one encoder key under `root/<key>/`.

    Files: `vectors.f16` (row-major float16), `ids.i64` and `meta.json` (dim, count). `count` in
    meta.json is written last, so a writer that dies mid-append leaves trailing bytes that the
    next append overwrites and readers never see. One writer at a time (a file lock); readers
    need no lock.
    """

    def __init__(self, root: str | os.PathLike[str], encoder_key: str, dim: int):
        self.path = Path(root) / safe_key(encoder_key)
        self.encoder_key = encoder_key
        self.dim = int(dim)
        self.path.mkdir(parents=True, exist_ok=True)
        meta = self._read_meta()
        if meta is None:
            self._write_meta(0)
        elif meta["dim"] != self.dim:
            raise ValueError(f"store {self.path} holds {meta['dim']}-d vectors, not {self.dim}-d")
        self._index: dict[int, int] | None = None
        self._index_count = -1

    # files
    @property
    def _meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def _vectors_path(self) -> Path:
        return self.path / "vectors.f16"

    @property
    def _ids_path(self) -> Path:
        return self.path / "ids.i64"

    def _read_meta(self) -> dict | None:
        try:
            return json.loads(self._meta_path.read_text())
        except FileNotFoundError:
            return None

    def _write_meta(self, count: int) -> None:
        tmp = self._meta_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"encoder_key": self.encoder_key, "dim": self.dim, "count": count})
        )
        os.replace(tmp, self._meta_path)

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        with open(self.path / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # reading
    def __len__(self) -> int:
        meta = self._read_meta()
        return int(meta["count"]) if meta else 0

    def ids(self) -> np.ndarray:
        count = len(self)
        if count == 0:
            return np.empty(0, dtype=np.int64)
        return np.fromfile(self._ids_path, dtype=np.int64, count=count)

    def vectors(self) -> np.ndarray:
        """All vectors, memory-mapped read-only, in the order of `ids()`."""
        count = len(self)
        if count == 0:
            return np.empty((0, self.dim), dtype=np.float16)
        return np.memmap(self._vectors_path, dtype=np.float16, mode="r", shape=(count, self.dim))

    def _row_index(self) -> dict[int, int]:
        count = len(self)
        if self._index is None or self._index_count != count:
            self._index = {int(i): row for row, i in enumerate(self.ids())}
            self._index_count = count
        return self._index

    def contains(self, ids: Sequence[int]) -> np.ndarray:
        index = self._row_index()
        return np.fromiter((int(i) in index for i in ids), dtype=bool, count=len(ids))

    def missing(self, ids: Sequence[int]) -> list[int]:
        """The ids that have no vector yet (what an embedding job still has to do)."""
        index = self._row_index()
        return [int(i) for i in ids if int(i) not in index]

    def get(self, ids: Sequence[int]) -> np.ndarray:
        """Vectors for `ids` in that order; KeyError names the first id without one."""
        index = self._row_index()
        try:
            rows = np.fromiter((index[int(i)] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError as error:
            raise KeyError(f"no {self.encoder_key} embedding for item {error.args[0]}") from None
        return np.asarray(self.vectors()[rows])

    # writing
    def append(self, ids: Sequence[int], vectors: np.ndarray) -> int:
        """Add vectors for ids not stored yet (others are skipped); returns how many were added."""
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(
                f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("vectors must be finite")
        with self._writer_lock():
            self._index = None
            new = ~self.contains(ids)
            _, first = np.unique(ids, return_index=True)  # a repeated id in one call counts once
            once = np.zeros(len(ids), dtype=bool)
            once[first] = True
            new &= once
            count = len(self)
            if new.any():
                for path, data in (
                    (self._vectors_path, vectors[new].astype(np.float16)),
                    (self._ids_path, ids[new]),
                ):
                    with open(path, "r+b" if path.exists() else "wb") as f:
                        f.seek(count * data.itemsize * (data.shape[1] if data.ndim == 2 else 1))
                        f.write(np.ascontiguousarray(data).tobytes())
                        f.truncate()
                        f.flush()
                        os.fsync(f.fileno())
                self._write_meta(count + int(new.sum()))
            self._index = None
            return int(new.sum())
