"""The on-disk store of embeddings: numpy only (no torch), so web views can read it.

`EmbeddingStore` keeps one append-only float16 matrix + id array per encoder key (memory-mapped
for reading), so 100,000 × 384 vectors are 77 MB on disk and one `np.memmap` away, never a DB
row per number. A store may have a mirror (`StoreMirror`) that other machines' stores pull
its segments from; the local files are then a cache, checked segment by segment by SHA-256.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import numpy as np


def safe_key(key: str) -> str:
    """An encoder key usable as a folder name on every OS."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", key)


class StoreDamaged(Exception):
    """The store's files do not hold what its meta.json says (cut short, altered, unreadable)."""


class StoreMirror(Protocol):
    """Somewhere else the segments of a store are kept, so stores on other machines can
    catch up (core/storage.py: a Django storage, e.g. an S3 bucket). `pull` copies the
    segments this store lacks, `push` publishes the ones the mirror lacks, `forget` empties
    the mirror."""

    def pull(self, store: EmbeddingStore) -> None: ...

    def push(self, store: EmbeddingStore) -> None: ...

    def forget(self) -> None: ...


class EmbeddingStore:
    """Append-only vectors for one encoder key under `root/<key>/`.

    Files: `vectors.f16` (row-major float16), `ids.i64` and `meta.json` (dim, count, and the
    SHA-256 of every appended segment). `count` in meta.json is written last, so a writer that
    dies mid-append leaves trailing bytes that the next append overwrites and readers never
    see. One writer at a time (a file lock); readers need no lock. Readers check the file sizes
    (cheap) and raise `StoreDamaged`; `verify` also re-hashes every segment (the worker does,
    before it appends, and rebuilds a damaged store: `reset`).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        encoder_key: str,
        dim: int,
        *,
        mirror: StoreMirror | None = None,
    ):
        self.path = Path(root) / safe_key(encoder_key)
        self.encoder_key = encoder_key
        self.dim = int(dim)
        self.mirror = mirror
        self.path.mkdir(parents=True, exist_ok=True)
        meta = self._read_meta()
        if meta is None:
            self._write_meta(0)
        elif meta["dim"] != self.dim:
            raise ValueError(f"store {self.path} holds {meta['dim']}-d vectors, not {self.dim}-d")
        self._index: dict[int, int] | None = None
        self._index_count = -1
        if mirror is not None:
            mirror.pull(self)

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
            meta = json.loads(self._meta_path.read_text())
            int(meta["count"]), int(meta["dim"])
            return meta
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise StoreDamaged(f"{self._meta_path} is unreadable: {error}") from error

    def _write_meta(self, count: int, segments: list | None = None) -> None:
        tmp = self._meta_path.with_suffix(".tmp")
        meta = {"encoder_key": self.encoder_key, "dim": self.dim, "count": count}
        meta["segments"] = segments if segments is not None else []
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, self._meta_path)

    def _check_sizes(self, count: int) -> None:
        for path, row_bytes in ((self._ids_path, 8), (self._vectors_path, 2 * self.dim)):
            size = path.stat().st_size if path.exists() else 0
            if size < count * row_bytes:
                raise StoreDamaged(f"{path} holds {size} bytes, fewer than {count} rows")

    def verify(self) -> None:
        """Raise StoreDamaged unless every segment hashes as recorded (reads the whole store)."""
        meta = self._read_meta()
        if meta is None:
            return
        self._check_sizes(int(meta["count"]))
        start = 0
        for count, digest in meta.get("segments", []):
            if _segment_digest(self, start, count) != digest:
                raise StoreDamaged(f"rows {start}-{start + count - 1} of {self.path} changed")
            start += count

    def segments(self) -> list[tuple[int, str]]:
        """(rows, SHA-256) of each appended segment, in order."""
        meta = self._read_meta() or {}
        return [(int(count), str(digest)) for count, digest in meta.get("segments", [])]

    def segment_bytes(self, start: int, count: int) -> bytes:
        """Rows start..start+count-1 as stored: their ids, then their vectors (the bytes
        a segment's SHA-256 is taken over)."""
        parts = []
        for path, row_bytes in ((self._ids_path, 8), (self._vectors_path, 2 * self.dim)):
            with open(path, "rb") as f:
                f.seek(start * row_bytes)
                parts.append(f.read(count * row_bytes))
        return b"".join(parts)

    @classmethod
    def reset(
        cls,
        root: str | os.PathLike[str],
        encoder_key: str,
        dim: int,
        *,
        mirror: StoreMirror | None = None,
    ) -> EmbeddingStore:
        """An empty store in place of a damaged one (its mirror, if any, emptied too)."""
        shutil.rmtree(Path(root) / safe_key(encoder_key), ignore_errors=True)
        if mirror is not None:
            mirror.forget()
        return cls(root, encoder_key, dim, mirror=mirror)

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
        if not meta:
            return 0
        count = int(meta["count"])
        self._check_sizes(count)
        return count

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

    def contains(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        index = self._row_index()
        return np.fromiter((int(i) in index for i in ids), dtype=bool, count=len(ids))

    def missing(self, ids: Sequence[int]) -> list[int]:
        """The ids that have no vector yet (what an embedding job still has to do)."""
        index = self._row_index()
        return [int(i) for i in ids if int(i) not in index]

    def get(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Vectors for `ids` in that order; KeyError names the first id without one."""
        index = self._row_index()
        try:
            rows = np.fromiter((index[int(i)] for i in ids), dtype=np.int64, count=len(ids))
        except KeyError as error:
            raise KeyError(f"no {self.encoder_key} embedding for item {error.args[0]}") from None
        return np.asarray(self.vectors()[rows])

    # writing
    def append(self, ids: Sequence[int], vectors: np.ndarray, *, publish: bool = True) -> int:
        """Add vectors for ids not stored yet (others are skipped); returns how many were added.
        With a mirror, the new segment is published to it (`publish=False`: the mirror's own
        pull, which copies segments it already holds)."""
        id_array = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors)
        if vectors.shape != (len(id_array), self.dim):
            raise ValueError(
                f"expected vectors of shape ({len(id_array)}, {self.dim}), got {vectors.shape}"
            )
        if not np.isfinite(vectors).all():
            raise ValueError("vectors must be finite")
        with self._writer_lock():
            self._index = None
            new = ~self.contains(id_array)
            _, first = np.unique(
                id_array, return_index=True
            )  # a repeated id in one call counts once
            once = np.zeros(len(id_array), dtype=bool)
            once[first] = True
            new &= once
            count = len(self)
            if new.any():
                for path, data in (
                    (self._vectors_path, vectors[new].astype(np.float16)),
                    (self._ids_path, id_array[new]),
                ):
                    with open(path, "r+b" if path.exists() else "wb") as f:
                        f.seek(count * data.itemsize * (data.shape[1] if data.ndim == 2 else 1))
                        f.write(np.ascontiguousarray(data).tobytes())
                        f.truncate()
                        f.flush()
                        os.fsync(f.fileno())
                segments = (self._read_meta() or {}).get("segments", [])
                segments.append([int(new.sum()), _segment_digest(self, count, int(new.sum()))])
                self._write_meta(count + int(new.sum()), segments)
            self._index = None
        if new.any() and self.mirror is not None and publish:
            self.mirror.push(self)
        return int(new.sum())


def _segment_digest(store: EmbeddingStore, start: int, count: int) -> str:
    """SHA-256 of rows start..start+count-1: their ids, then their vectors, as stored."""
    digest = hashlib.sha256()
    for path, row_bytes in ((store._ids_path, 8), (store._vectors_path, 2 * store.dim)):
        with open(path, "rb") as f:
            f.seek(start * row_bytes)
            left = count * row_bytes
            while left:
                block = f.read(min(left, 1 << 22))
                if not block:
                    raise StoreDamaged(f"{path} ends before row {start + count}")
                digest.update(block)
                left -= len(block)
    return digest.hexdigest()


class RowView:
    """Rows `index` of a matrix (the store's float16 memory map), read only when indexed: a
    pool that is never copied whole, however large. Indexing (a slice, a boolean mask or row
    numbers) gives float32 rows; `take` narrows the view without reading anything."""

    ndim = 2

    def __init__(self, matrix: np.ndarray, index: np.ndarray | None = None):
        self.matrix = matrix
        self.index = None if index is None else np.asarray(index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.matrix) if self.index is None else len(self.index)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), int(self.matrix.shape[1])

    def _rows(self, rows) -> np.ndarray | slice:
        if self.index is None:
            return rows
        return self.index[rows]

    def take(self, rows) -> RowView:
        """The view of `rows` of this one (no data read)."""
        picked = np.arange(len(self.matrix))[rows] if self.index is None else self.index[rows]
        return RowView(self.matrix, picked)

    def __getitem__(self, rows) -> np.ndarray:
        return np.asarray(self.matrix[self._rows(rows)], dtype=np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[:], dtype=dtype)
