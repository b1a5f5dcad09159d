"""Benchmark: the image browser on a 100,000-item project — milliseconds per page.

Uses bench/export.py's project (100,000 labeled items, 10 classes, 3 annotators, a current model
version with a prediction per item) plus 384-d embeddings for "more like this", then requests
pages through Django's test client (view, queries and template; no network): the first page,
a page deep in the project (keyset: after item 90,000), each filter, a filter that matches
almost nothing (the worst case: it scans to the end), and "more like this". Median of
`--repeats` requests each. Baseline in the same run: an OFFSET page at the same depth (what
page-number paging would do).

    .venv/bin/python bench/browse.py [--items 100000]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.export import fill, setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="browse-bench-") as tmp:
        workdir = Path(tmp)
        os.environ["ANNOTATOR_EMBEDDINGS_DIR"] = str(workdir / "embeddings")
        setup_django(workdir)
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        import numpy as np
        from django.conf import settings
        from django.test import Client

        from core.models import Item, Membership, Project, Role
        from core.selectors.common import embedding_store

        settings.ALLOWED_HOSTS = ["*"]
        project_id = fill(workdir, args.items)
        project = Project.objects.get(pk=project_id)
        Project.objects.filter(pk=project_id).update(embedding_key="bench-384", embedding_dim=384)
        project.refresh_from_db()
        ids = np.array(
            Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True)
        )
        rng = np.random.default_rng(0)
        embedding_store(project=project).append(
            ids, rng.normal(size=(len(ids), 384)).astype(np.float16)
        )
        admin = Membership.objects.filter(project=project, role=Role.ADMIN).first().user
        client = Client()
        client.force_login(admin)
        url = f"/projects/{project_id}/browse/"
        first_class = project.classes.order_by("order").first().pk
        deep = int(ids[int(len(ids) * 0.9)])
        cases = {
            "first page": {},
            "deep page (after 90%)": {"after": deep},
            "status=labeled": {"status": "labeled"},
            "class filter": {"label_class": first_class},
            "annotator filter": {"annotator": admin.pk},
            "predicted class + confidence 0.9-1": {
                "predicted_class": first_class,
                "min_confidence": 0.9,
                "max_confidence": 1.0,
            },
            "status=unlabeled (matches nothing: full scan)": {"status": "unlabeled"},
            "more like this": {"similar_to": int(ids[123])},
        }
        results = {}
        for name, params in cases.items():
            timings = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                response = client.get(url, params)
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (name, response.status_code)
            results[name] = {
                "median_ms": round(statistics.median(timings), 1),
                "max_ms": round(max(timings), 1),
                "images": response.content.count(b'class="thumb"'),
            }
            print(f"{name}: {results[name]}", file=sys.stderr)
        # Baseline: the same deep page by OFFSET, as page-number paging would fetch it.
        timings = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            list(
                Item.objects.filter(project=project).order_by("pk")[
                    int(len(ids) * 0.9) : int(len(ids) * 0.9) + 60
                ]
            )
            timings.append((time.perf_counter() - started) * 1000)
        baseline = {"offset_page_query_only_median_ms": round(statistics.median(timings), 1)}
    print(
        json.dumps(
            {
                "benchmark": "browse",
                "items": args.items,
                "database": "sqlite",
                "pages": results,
                "baseline": baseline,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
