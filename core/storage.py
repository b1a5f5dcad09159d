"""Where files live: two Django storages, chosen once in settings (`storages_from_env` in
`annotator/settings/base.py`).

- `default`: the images and thumbnails people import (`Item.image`, `Item.thumbnail`).
- `artifacts`: what the app makes from them and must share between machines: embedding
  segments, staged uploads waiting for their import job, export files.

Without `AWS_STORAGE_BUCKET_NAME` both are folders on this machine (`MEDIA_ROOT`,
`ANNOTATOR_ARTIFACTS_DIR`). With it both are prefixes (`media/`, `artifacts/`) of one
S3-compatible bucket through django-storages, so web servers and workers on several hosts
share them with no shared filesystem. Code never asks which: it opens, saves, lists and
deletes names through the storage API, and `remote()` only decides whether a worker must
keep a local copy (embeddings are memory-mapped, so they are always read from local disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages

from models_ml.store import EmbeddingStore, StoreDamaged


class ArtifactStorage(FileSystemStorage):
    """The local `artifacts` storage: a folder that follows `ANNOTATOR_ARTIFACTS_DIR` even
    when a test changes the setting (FileSystemStorage caches MEDIA_ROOT-style paths)."""

    def __init__(self, **kwargs):
        kwargs.pop("location", None)
        super().__init__(**kwargs)

    @property
    def base_location(self):  # type: ignore[override]
        return str(settings.ANNOTATOR_ARTIFACTS_DIR)

    @property
    def location(self):  # type: ignore[override]
        return str(Path(settings.ANNOTATOR_ARTIFACTS_DIR).resolve())


def artifacts() -> Storage:
    return storages["artifacts"]


def remote(storage: Storage | None = None) -> bool:
    """True when the storage is not a folder on this machine (its files have no path)."""
    storage = storage or artifacts()
    try:
        storage.path("probe")
    except NotImplementedError:
        return True
    return False


def opener(storage: Storage | None = None) -> Callable[[str], BinaryIO]:
    """`open(name, "rb")` for reading many stored files in a row (an export's images; the
    `default` storage unless told). On a local folder the folder is resolved once and each
    name checked by a plain test (relative, no `..` part, no backslash): the storage API's
    lazy lookup and `safe_join` cost more per file than the read (100,000 images: 1.0 s of
    an export's 5). On a bucket, the storage API."""
    storage = storage or storages["default"]
    if remote(storage):
        return lambda name: storage.open(name, "rb")
    root = storage.path("")

    def open_local(name: str) -> BinaryIO:
        if name.startswith("/") or "\\" in name or ".." in name.split("/"):
            raise SuspiciousFileOperation(f"{name!r} is not a stored file's name")
        return open(os.path.join(root, name), "rb")

    return open_local


def save(name: str, source: Path | str, *, storage: Storage | None = None) -> str:
    """Store the local file `source` as `name` (replacing an object of that name in the
    artifacts storage); returns the stored name."""
    storage = storage or artifacts()
    if storage.exists(name):
        storage.delete(name)
    with open(source, "rb") as f:
        return storage.save(name, File(f, name=Path(name).name))


def delete_prefix(prefix: str, *, storage: Storage | None = None) -> int:
    """Delete every file under `prefix/` (a folder locally, a key prefix in a bucket)."""
    storage = storage or artifacts()
    removed = 0
    try:
        folders, files = storage.listdir(prefix)
    except FileNotFoundError:
        return 0
    for name in files:
        storage.delete(f"{prefix}/{name}")
        removed += 1
    for folder in folders:
        removed += delete_prefix(f"{prefix}/{folder}", storage=storage)
    if not remote(storage):
        shutil.rmtree(storage.path(prefix), ignore_errors=True)
    return removed


def fetch(name: str, target: Path, *, storage: Storage | None = None) -> bool:
    """Download the stored file `name` to `target` unless it is there already; False when
    the storage has no such file."""
    if target.exists():
        return True
    storage = storage or artifacts()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with storage.open(name, "rb") as source, open(partial, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    except FileNotFoundError:
        partial.unlink(missing_ok=True)
        return False
    partial.replace(target)
    return True


@contextmanager
def local_copies(names: list[str], *, storage: Storage | None = None) -> Iterator[list[Path]]:
    """Paths on this machine for stored files: their own paths when the storage is a local
    folder, else downloaded copies in a temporary folder removed afterwards."""
    storage = storage or artifacts()
    if not remote(storage):
        yield [Path(storage.path(name)) for name in names]
        return
    with tempfile.TemporaryDirectory(prefix="annotator-fetch-") as folder:
        paths = [Path(folder) / f"{number:05d}" for number in range(len(names))]
        for name, target in zip(names, paths, strict=True):
            fetch(name, target, storage=storage)  # a missing file stays missing, as locally
        yield paths


class BucketMirror:
    """The `StoreMirror` of an embedding store in the `artifacts` storage: one object per
    segment, named by its SHA-256 (`<prefix>/segments/<digest>`), and a manifest listing
    them in order (`<prefix>/manifest.json`, written after its segments). Each machine's
    local store is then a cache that catches up by downloading only the segments it lacks,
    and checks each against its name.

    Two machines appending to one store at once are re-based (`push`), but S3 offers no
    compare-and-swap here: a second write landing between another's manifest read and write
    can still drop that other's new segment from the manifest until it appends again. The
    job queue runs one embedding job per project at a time, which keeps this rare."""

    def __init__(self, prefix: str, *, storage: Storage | None = None):
        self.prefix = prefix
        self.storage = storage or artifacts()

    @property
    def _manifest_name(self) -> str:
        return f"{self.prefix}/manifest.json"

    def _segment_name(self, digest: str) -> str:
        return f"{self.prefix}/segments/{digest}"

    def manifest(self) -> dict | None:
        try:
            with self.storage.open(self._manifest_name, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return None

    def pull(self, store: EmbeddingStore) -> None:
        manifest = self.manifest()
        if not manifest:
            return
        if int(manifest["dim"]) != store.dim:
            raise StoreDamaged(f"{self._manifest_name} holds {manifest['dim']}-d vectors")
        remote = [(int(count), str(digest)) for count, digest in manifest["segments"]]
        local = store.segments()
        if local[: len(remote)] != remote[: len(local)]:
            # This cache went another way (its machine lost a race to publish): start over.
            store = type(store).reset(store.path.parent, store.encoder_key, store.dim)
            local = []
        for count, digest in remote[len(local) :]:
            with self.storage.open(self._segment_name(digest), "rb") as f:
                data = f.read()
            if hashlib.sha256(data).hexdigest() != digest or len(data) != count * (
                8 + 2 * store.dim
            ):
                raise StoreDamaged(f"segment {digest} of {self.prefix} does not match its name")
            ids = np.frombuffer(data[: 8 * count], dtype=np.int64)
            vectors = np.frombuffer(data[8 * count :], dtype=np.float16).reshape(count, store.dim)
            store.append(ids, vectors, publish=False)
        if store.segments()[: len(remote)] != remote:
            raise StoreDamaged(f"the local copy of {self.prefix} did not match after pulling")

    def push(self, store: EmbeddingStore) -> None:
        local = store.segments()
        for _ in range(3):
            manifest = self.manifest() or {"segments": []}
            remote = [(int(count), str(digest)) for count, digest in manifest["segments"]]
            if local[: len(remote)] != remote:
                # Another machine published first: take its segments, then add our rows
                # after them (those it has already are skipped) and try again.
                ids, vectors = store.ids().copy(), np.array(store.vectors())
                fresh = type(store).reset(store.path.parent, store.encoder_key, store.dim)
                self.pull(fresh)
                fresh.append(ids, vectors, publish=False)
                local = fresh.segments()
                store = fresh
                continue
            start = sum(count for count, _ in remote)
            for count, digest in local[len(remote) :]:
                name = self._segment_name(digest)
                if not self.storage.exists(name):
                    self.storage.save(
                        name, ContentFile(store.segment_bytes(start, count), name=digest)
                    )
                start += count
            manifest = {"encoder_key": store.encoder_key, "dim": store.dim, "segments": local}
            if self.storage.exists(self._manifest_name):
                self.storage.delete(self._manifest_name)
            self.storage.save(self._manifest_name, ContentFile(json.dumps(manifest).encode()))
            return
        raise RuntimeError(f"could not publish {self.prefix}: other machines kept writing")

    def forget(self) -> None:
        delete_prefix(self.prefix, storage=self.storage)
