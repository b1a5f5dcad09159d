"""Benchmark: exporting 100,000 labeled items in every format: seconds and memory growth.

Builds a fresh SQLite project of `--items` items (a small PNG each, stored like imported ones),
10 classes, every item labeled by one of 3 annotators and, for the pseudo-label path, a current
model version with a prediction for each. Each format then runs in its own process through
`manage.py export_labels`' service (core/services/exports.py), which reports its wall time and
its peak resident memory minus the resident memory just before the export started.

Baseline in the same run: the naive way, every row loaded into a list first, then written as
CSV. Goal (#24): every format within 5 s; memory flat (within 100 MB of the start).

    .venv/bin/python bench/export.py [--items 100000]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakSampler:
    """The highest resident memory seen while the block runs, sampled every 5 ms (the
    process-lifetime peak, ru_maxrss, would include start-up)."""

    def __enter__(self) -> "PeakSampler":
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def setup_django(workdir: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotator.settings.dev")
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    import django

    django.setup()


def fill(workdir: Path, n_items: int) -> int:
    """The project to export; returns its id."""
    import io

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone
    from PIL import Image

    from core.models import Annotation, Item, Lease, ModelVersion, Prediction, SuggestionSource
    from core.services.projects import project_create

    call_command("migrate", verbosity=0)
    users = [get_user_model().objects.create_user(f"annotator{i}") for i in range(3)]
    project = project_create(
        name="export bench", created_by=users[0], class_names=[f"class{i}" for i in range(10)]
    )
    classes = list(project.classes.values_list("pk", flat=True))
    media = workdir / "media" / "bench"
    media.mkdir(parents=True)
    rng = np.random.default_rng(0)
    png = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(png, "PNG")
    for i in range(n_items):  # one file per item, as imports store them
        (media / f"{i:06d}.png").write_bytes(png.getvalue())
    now = timezone.now()
    Item.objects.bulk_create(
        (
            Item(
                project=project,
                image=f"bench/{i:06d}.png",
                thumbnail=f"bench/{i:06d}.png",
                content_hash=f"{i:064x}",
                width=16,
                height=16,
                original_name=f"photo_{i:06d}.png",
                annotation_count=1,
                is_done=True,
            )
            for i in range(n_items)
        ),
        batch_size=5000,
    )
    ids = list(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    truth = rng.integers(0, 10, len(ids))
    who = rng.integers(0, 3, len(ids))
    Lease.objects.bulk_create(
        (
            Lease(item_id=i, annotator=users[w], leased_at=now, expires_at=now, completed_at=now)
            for i, w in zip(ids, who, strict=True)
        ),
        batch_size=5000,
    )
    Annotation.objects.bulk_create(
        (
            Annotation(item_id=i, annotator=users[w], label_class_id=classes[t], duration_ms=900)
            for i, w, t in zip(ids, who, truth, strict=True)
        ),
        batch_size=5000,
    )
    version = ModelVersion.objects.create(
        project=project, number=1, class_ids=classes, labels_count=len(ids)
    )
    Prediction.objects.bulk_create(
        (
            Prediction(
                item_id=i,
                model_version=version,
                probabilities=[0.1] * 10,
                predicted_class_id=classes[t],
                confidence=0.95,
                acquisition_score=0.0,
                source=SuggestionSource.MODEL,
            )
            for i, t in zip(ids, truth, strict=True)
        ),
        batch_size=5000,
    )
    project.current_model_version = version
    project.save()
    return project.pk


def export_one(project_id: int, fmt: str, out: Path) -> dict:
    """Run in a fresh process: one export, its seconds and memory growth."""
    from core.models import Project

    project = Project.objects.get(pk=project_id)
    before_import = rss_mb()
    if fmt == "parquet":  # loading the library is a fixed cost, reported on its own
        import pyarrow.parquet  # noqa: F401
    library_mb = rss_mb() - before_import
    start_rss, started = rss_mb(), time.perf_counter()
    with PeakSampler() as sampler:
        result = _export(project, fmt, out)
    return {
        **result,
        "seconds": round(time.perf_counter() - started, 2),
        "rss_start_mb": round(start_rss, 1),
        "library_import_mb": round(library_mb, 1),
        "peak_growth_mb": round(sampler.peak - start_rss, 1),
    }


def _export(project, fmt: str, out: Path) -> dict:
    from core.models import Annotation
    from core.services.exports import export_write

    if fmt == "naive-csv":  # the baseline: everything in memory first
        rows = list(
            Annotation.objects.filter(item__project=project, is_current=True)
            .order_by("item_id")
            .values_list(
                "item_id", "item__original_name", "label_class__name", "annotator__username"
            )
        )
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["item_id", "file_name", "label", "annotators"])
            writer.writerows(rows)
        return {"rows": len(rows), "bytes": out.stat().st_size}
    summary = export_write(project=project, fmt=fmt, path=out)
    return {"rows": summary.rows, "bytes": summary.bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--project", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process
        setup_django(args.workdir)
        out = args.workdir / f"export-{args.one}"
        print(json.dumps(export_one(args.project, args.one, out)))
        return
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        workdir = Path(tmp)
        setup_django(workdir)
        started = time.perf_counter()
        project_id = fill(workdir, args.items)
        fill_s = time.perf_counter() - started
        results = {}
        from core.services.exports import EXPORT_FORMATS

        for fmt in [*EXPORT_FORMATS, "naive-csv"]:  # every registered format, and the old CSV
            child = subprocess.run(
                [sys.executable, __file__, "--one", fmt, "--workdir", str(workdir),
                 "--project", str(project_id)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[fmt] = json.loads(child.stdout.strip().splitlines()[-1])
            (workdir / f"export-{fmt}").unlink()
            print(f"{fmt}: {results[fmt]}", file=sys.stderr)
    print(
        json.dumps(
            {
                "benchmark": "export",
                "items": args.items,
                "fill_s": round(fill_s, 1),
                "formats": results,
                "goal": "every format <= 5 s; peak memory growth < 100 MB",
                "goal_met": all(
                    r["seconds"] <= 5 and r["peak_growth_mb"] < 100
                    for f, r in results.items()
                    if f != "naive-csv"
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
