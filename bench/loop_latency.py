"""Benchmark: how long after the Nth label the queue serves from the model trained on it.

Starts the app as `make run` does (daphne with the task worker as threads of the server,
SQLite, in-memory channel layer) on a fresh database holding a 10,000-item pool whose
embeddings are already cached (synthetic 384-d vectors with class structure, written to
the project's embedding store, so the figure is the loop, not the encoder). One annotator
labels over HTTP like a fast person (`--think-ms` per image, answers from the ground
truth). Every `--retrain-every` labels the submit requests a training run; for each such
trigger we time from sending that Nth submit until a lease-next response carries a
suggestion from a model version trained on at least those N labels.

Prints one JSON object: per-trigger latencies, median and p95, the worker's own seconds
per step (from the training jobs' metrics) and the goal (< 3 s on this CPU).

    .venv/bin/python bench/loop_latency.py [--items 10000] [--retrain-every 20] [--triggers 10]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.next_item import free_port, percentile, wait_for  # noqa: E402

PYTHON = sys.executable

FILL_SCRIPT = r"""
import sys
import numpy as np
import django
django.setup()
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from core.models import Item, Project
from core.services.embeddings import embedding_store
from core.services.projects import project_create

n_items, n_classes, dim, retrain_every = map(int, sys.argv[1:5])
User = get_user_model()
admin = User.objects.create_user("bench-admin", password="x")
project = project_create(
    name="loop bench", created_by=admin, class_names=[f"c{i}" for i in range(n_classes)],
    retrain_every=retrain_every, encoder_name="pixels", strategy="entropy", lease_seconds=600,
)
classes = list(project.classes.values_list("pk", flat=True))
rng = np.random.default_rng(0)
truth = rng.integers(0, n_classes, n_items)
Item.objects.bulk_create(
    (Item(project=project, image=f"bench/{i}.png", thumbnail=f"bench/{i}-t.jpg",
          content_hash=f"{i:064x}", width=32, height=32, original_name=f"{i}.png",
          random_key=float(rng.random()), ground_truth_id=classes[truth[i]])
     for i in range(n_items)),
    batch_size=5000,
)
ids = np.array(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
centres = rng.normal(size=(n_classes, dim))
vectors = centres[truth] + 1.5 * rng.normal(size=(n_items, dim))
key = "bench-synthetic-384"
Project.objects.filter(pk=project.pk).update(embedding_key=key, embedding_dim=dim)
project.refresh_from_db()
embedding_store(project=project).append(ids, vectors.astype(np.float16))
token = Token.objects.create(user=admin).key
answers = {int(i): classes[t] for i, t in zip(ids, truth)}
import json
print(json.dumps({"project": project.pk, "token": token, "answers": answers}))
"""

JOBS_SCRIPT = r"""
import json, sys
import django
django.setup()
from core.models import Job
jobs = Job.objects.filter(project_id=int(sys.argv[1]), kind="train").order_by("id")
print(json.dumps([{"status": j.status, "metrics": j.metrics, "message": j.message,
                   "requests": j.requests, "duration_s": j.duration_s} for j in jobs]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--retrain-every", type=int, default=20)
    parser.add_argument("--triggers", type=int, default=10)
    parser.add_argument("--think-ms", type=float, default=500, help="time per image")
    parser.add_argument("--timeout-s", type=float, default=120)
    args = parser.parse_args()
    # the bench's database, media and server log go away with the run
    with tempfile.TemporaryDirectory(prefix="annotator-loop-bench-") as var:
        measure(args, Path(var))


def measure(args: argparse.Namespace, var: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "annotator.settings.dev",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "ANNOTATOR_VAR_DIR": str(var),
        "ANNOTATOR_INPROCESS_WORKER": "1",
        "ANNOTATOR_CLIP_MODEL": "",
    }
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    setup = json.loads(
        subprocess.run(
            [
                PYTHON,
                "-c",
                FILL_SCRIPT,
                str(args.items),
                str(args.classes),
                str(args.dim),
                str(args.retrain_every),
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    project, answers = setup["project"], {int(k): v for k, v in setup["answers"].items()}
    port = free_port()
    log = var / "server.log"
    server = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "annotator.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    base = f"http://127.0.0.1:{port}/api/projects/{project}"
    session = requests.Session()
    session.headers["Authorization"] = f"Token {setup['token']}"
    latencies, labels, pending, errors = [], 0, [], []
    request_ms = []
    try:
        wait_for(port)
        started = time.perf_counter()
        while len(latencies) < args.triggers:
            if time.perf_counter() - started > args.timeout_s * args.triggers:
                errors.append("gave up: the loop did not keep up")
                break
            t = time.perf_counter()
            lease = session.post(f"{base}/lease-next/", timeout=30)
            request_ms.append((time.perf_counter() - t) * 1000)
            if lease.status_code != 200:
                errors.append(f"lease {lease.status_code}")
                break
            body = lease.json()
            served = time.perf_counter()
            trained_on = (body["suggestion"] or {}).get("model_version_labels") or 0
            while pending and trained_on >= pending[0][0]:
                count, sent = pending.pop(0)
                latencies.append(round(served - sent, 3))
            time.sleep(args.think_ms / 1000)
            item = body["item"]["id"]
            sent = time.perf_counter()
            submit = session.post(
                f"{base}/items/{item}/submit/",
                json={"label_class": answers[item], "duration_ms": int(args.think_ms)},
                timeout=30,
            )
            request_ms.append((time.perf_counter() - sent) * 1000)
            if submit.status_code != 201:
                errors.append(f"submit {submit.status_code}")
                continue
            labels += 1
            if labels % args.retrain_every == 0:
                pending.append((labels, sent))
    finally:
        server.terminate()
        server.wait(timeout=30)
    jobs = json.loads(
        subprocess.run(
            [PYTHON, "-c", JOBS_SCRIPT, str(project)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    steps = [j["metrics"].get("seconds", {}) for j in jobs if j["status"] == "succeeded"]
    step_medians = {
        name: round(statistics.median(s[name] for s in steps if name in s), 4)
        for name in (steps[0] if steps else {})
    }
    p50 = round(statistics.median(latencies), 3) if latencies else None
    p95 = percentile([x * 1000 for x in latencies], 95) / 1000 if len(latencies) > 1 else None
    print(
        json.dumps(
            {
                "benchmark": "loop_latency",
                "pool_items": args.items,
                "embedding_dim": args.dim,
                "classes": args.classes,
                "retrain_every": args.retrain_every,
                "think_ms": args.think_ms,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "database": "sqlite",
                "worker": "in-process (make run)",
                "triggers_measured": len(latencies),
                "labels": labels,
                "latencies_s": latencies,
                "median_s": p50,
                "p95_s": round(p95, 3) if p95 is not None else None,
                "goal_s": 3.0,
                "goal_met": p95 is not None and p95 < 3.0,
                "http_request_p50_ms": percentile(request_ms, 50),
                # the annotator's slowest answers: waits on a training run's writes show here
                "http_request_p99_ms": percentile(request_ms, 99),
                "http_request_max_ms": round(max(request_ms), 1) if request_ms else None,
                "training_runs": len(jobs),
                "training_runs_succeeded": len(steps),
                "coalesced_requests": sum(j["requests"] - 1 for j in jobs),
                "training_step_median_s": step_medians,
                "training_run_median_s": round(
                    statistics.median(j["duration_s"] for j in jobs if j["duration_s"]), 3
                )
                if jobs
                else None,
                "errors": errors,
                "server_errors": [line for line in log.read_text().splitlines() if "Error" in line][
                    -5:
                ],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
