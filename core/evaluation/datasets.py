"""Evaluation datasets: an ImageFolder tree or zip with `train/` and `test/` splits, read
through the importer's sources (and so under its safety limits)."""

import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from core.services.imports import (
    sources_from_folder,
    split_and_class_from_name,
    zip_member_sources,
)


class SimulationError(Exception):
    """Input the simulation cannot run on; the message says what to change."""


@dataclass(frozen=True)
class Dataset:
    """The files of an ImageFolder tree or zip with train/ and test/ splits."""

    train: list[tuple[str, str]]  # (file name, class name)
    test: list[tuple[str, str]]
    read: Callable[[str], bytes]

    @property
    def classes(self) -> list[str]:
        return sorted({c for _, c in self.train})


@contextmanager
def dataset_open(path: Path) -> Iterator[Dataset]:
    """Open PATH (folder or zip) holding `train/<class>/…` and `test/<class>/…`.

    Files are read through the importer's sources, under its limits: per-file bytes, the
    zip's decompressed total, no symlinks followed, unsafe zip paths and junk skipped."""
    path = Path(path)
    limits = {"max_file_bytes": settings.ANNOTATOR_MAX_FILE_BYTES}
    with ExitStack() as stack:
        if path.is_dir():
            sources = list(sources_from_folder(path, **limits))
        elif zipfile.is_zipfile(path):
            zf = stack.enter_context(zipfile.ZipFile(path))
            sources = list(
                zip_member_sources(zf, max_total_bytes=settings.ANNOTATOR_MAX_ZIP_BYTES, **limits)
            )
        else:
            raise SimulationError(f"{path} is neither a folder nor a zip file.")
        readers = {source.name: source.read for source in sources}
        splits: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
        for name in sorted(readers):
            if ".." in name.split("/"):
                continue  # the importer refuses to read it: no class is made of it either
            split, class_name = split_and_class_from_name(name)
            if split in splits and class_name:
                splits[split].append((name, class_name))
        if not splits["train"] or not splits["test"]:
            raise SimulationError(
                f"{path} needs train/<class>/<image> and test/<class>/<image> files; found "
                f"{len(splits['train'])} train and {len(splits['test'])} test images."
            )
        unknown = {c for _, c in splits["test"]} - {c for _, c in splits["train"]}
        if unknown:
            raise SimulationError(f"test classes without train images: {sorted(unknown)}")
        yield Dataset(splits["train"], splits["test"], lambda name: readers[name]())


def subsample(files: list[tuple[str, str]], size: int | None, seed: int) -> list[tuple[str, str]]:
    """`size` files drawn at random, stratified by class (every class keeps its share)."""
    if size is None or size >= len(files):
        return list(files)
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[tuple[str, str]]] = {}
    for entry in files:
        by_class.setdefault(entry[1], []).append(entry)
    chosen: list[tuple[str, str]] = []
    for class_name in sorted(by_class):
        members = by_class[class_name]
        share = max(1, round(size * len(members) / len(files)))
        picks = rng.choice(len(members), min(share, len(members)), replace=False)
        chosen += [members[i] for i in sorted(picks)]
    return sorted(chosen)
