"""Benchmark: lease-next + submit round trips over HTTP with concurrent annotators.

Starts the real ASGI server (daphne) against a fresh database filled with a pool of
items, runs N annotators in parallel (each: lease-next, then submit, repeated), and
prints one JSON object with latency percentiles, errors and double assignments per
database (SQLite always; PostgreSQL when it answers) and per queue mode (random order
before any model; ordered by a model version's acquisition scores).

Each load runs twice with the same annotators, pauses and server: once with lease-next +
submit, once with a baseline of two plain authenticated reads (`GET .../classes/`) in
their place. The baseline is what any API call costs on this machine and server; the
difference is what the queue adds.

Think time 0 is saturation: the figures there are the server's capacity, and latency
follows from it (ten clients back to back wait for each other: latency = 10 / throughput).
Think time 1000 ms is ten annotators each answering one image a second on average,
faster than people label; the goal (p95 under 50 ms) is about that load. People do not
press keys in lockstep, so each pause is drawn at random around the think time
(uniform within +-`--think-jitter`, seeded per annotator, and a random first pause), as
in any closed-loop load test; `--think-jitter 0` gives the worst case instead, all ten
annotators asking at the same moment every round.

    .venv/bin/python bench/next_item.py [--items 100000] [--annotators 10] [--rounds 100]
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
BENCH_DB = "annotator_bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_unreachable_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:  # any failure to connect: benchmark SQLite only, and say why
        return str(exc)


def fresh_postgres_database() -> str:
    """Drop and recreate the bench database; return its URL."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"


FILL_SCRIPT = r"""
import random, sys
import django
django.setup()
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from core.models import Item, ModelVersion, Prediction, Project
from core.services.projects import project_create, membership_set

n_items, n_users, scored = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
User = get_user_model()
admin = User.objects.create_user("bench-admin", password="x")
project = project_create(name="bench", created_by=admin, class_names=["a", "b", "c", "d"],
                         lease_seconds=600)
rng = random.Random(0)
Item.objects.bulk_create(
    (Item(project=project, image=f"bench/{i}.png", thumbnail=f"bench/{i}-t.jpg",
          content_hash=f"{i:064x}", width=32, height=32, original_name=f"{i}.png",
          random_key=rng.random()) for i in range(n_items)),
    batch_size=5000,
)
if scored:
    class_ids = list(project.classes.values_list("id", flat=True))
    version = ModelVersion.objects.create(project=project, number=1, class_ids=class_ids)
    first_class = project.classes.first()
    Prediction.objects.bulk_create(
        (Prediction(item_id=item_id, model_version=version, probabilities=[0.25] * 4,
                    predicted_class=first_class, confidence=0.25, acquisition_score=rng.random())
         for item_id in Item.objects.filter(project=project).values_list("id", flat=True)),
        batch_size=5000,
    )
    Project.objects.filter(pk=project.pk).update(current_model_version=version)
from django.db import connection
with connection.cursor() as cursor:
    if connection.vendor == "postgresql":
        # The steady state of a server whose pool was imported a while ago: autovacuum has
        # visited the new rows and the checkpointer has written them out. Left to happen
        # during the measurement, both do so at a moment of their choosing.
        cursor.execute("VACUUM (ANALYZE)")
        try:
            cursor.execute("CHECKPOINT")
        except Exception as exc:  # needs superuser or pg_checkpoint; measure anyway
            print(f"no CHECKPOINT before measuring: {exc}", file=sys.stderr)
    else:
        cursor.execute("ANALYZE")  # fresh statistics, as autovacuum would have them
tokens = []
for u in range(n_users):
    user = User.objects.create_user(f"bench-{u}", password="x")
    membership_set(project=project, user=user, role="annotator")
    tokens.append(Token.objects.create(user=user).key)
print(project.pk, project.classes.first().pk, *tokens)
"""


def prepare(env: dict, items: int, annotators: int, scored: bool) -> tuple[int, int, list[str]]:
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    out = subprocess.run(
        [PYTHON, "-c", FILL_SCRIPT, str(items), str(annotators), "1" if scored else "0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), out[2:]


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/accounts/login/")
            connection.getresponse().read()
            return
        except (OSError, http.client.HTTPException):  # not listening yet, or starting up
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of process `pid` (NaN where there is no /proc), or of this
    process."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return float("nan")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(pid: int, timeout: float = 120) -> float:
    """Wait until the server process has finished starting up (the in-process worker
    imports torch, timm and scikit-learn in the background: seconds of CPU) and return
    how long that took, so that the measurement does not include it."""
    t0 = time.monotonic()
    if not Path(f"/proc/{pid}/stat").exists():  # not Linux: a fixed pause instead
        time.sleep(15)
        return 15.0
    quiet = 0
    while quiet < 2 and time.monotonic() - t0 < timeout:
        before = cpu_seconds(pid)
        time.sleep(1)
        quiet = quiet + 1 if cpu_seconds(pid) - before < 0.05 else 0
    return round(time.monotonic() - t0, 1)


def pauses(think_s: float, jitter: float, rounds: int, seed: int) -> list[float]:
    """The time a person looks at each image before answering: `think_s` on average,
    uniform within +-jitter of it; the first pause anywhere in [0, think_s * (1 + jitter)]
    so that annotators do not all start at the same moment."""
    if jitter == 0:
        return [think_s] * rounds
    rng = random.Random(seed)
    first = rng.uniform(0, think_s * (1 + jitter))
    return [first] + [think_s * rng.uniform(1 - jitter, 1 + jitter) for _ in range(rounds - 1)]


class Annotator:
    """One annotator's keep-alive HTTP connection, made with http.client.

    The ten annotators are threads of this one process, on the same two cores as the
    server and the database, so what the client costs is measured too: `requests` spends
    about 2 ms of CPU per request, under this process's GIL, shared by all ten (a
    response that arrives while another annotator's thread holds it waits). http.client
    spends a fraction of that. Browsers do not run on the server's cores.
    """

    def __init__(self, port: int, token: str):
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.connection.request(method, path, body=data, headers=self.headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # the next request opens a new connection
            raise


@dataclass(frozen=True)
class LabelingApi:
    """How an annotator asks for the next image and answers it, in one app's API: the
    request of each (method, path, body) and how to read the image's id from the first.
    bench/peer_label_studio.py gives Label Studio's."""

    lease: Callable[[object], tuple[str, str, dict | None]]  # project -> request
    item_id: Callable[[dict], int]  # lease response -> the image's id
    submit: Callable[[object, int, object], tuple[str, str, dict]]  # project, id, label


OURS = LabelingApi(
    lease=lambda project: ("POST", f"/api/projects/{project}/lease-next/", None),
    item_id=lambda body: body["item"]["id"],
    submit=lambda project, item, label: (
        "POST",
        f"/api/projects/{project}/items/{item}/submit/",
        {"label_class": label, "duration_ms": 500},
    ),
)


def annotate(
    port: int, project, label, token: str, waits: list, out: dict, api: LabelingApi = OURS
) -> None:
    client = Annotator(port, token)
    for pause in waits:
        time.sleep(pause)
        t0 = time.perf_counter()
        try:
            status, body = client.request(*api.lease(project))
            t1 = time.perf_counter()
            out["lease_ms"].append((t1 - t0) * 1000)
            if status != 200:
                out["errors"].append(f"lease {status}")
                continue
            item = api.item_id(json.loads(body))
            out["items"].append((item, token))
            status, _ = client.request(*api.submit(project, item, label))
            t2 = time.perf_counter()
            out["submit_ms"].append((t2 - t1) * 1000)
            out["pair_ms"].append((t2 - t0) * 1000)
            if status != 201:
                out["errors"].append(f"submit {status}")
        except (OSError, http.client.HTTPException) as exc:
            out["errors"].append(type(exc).__name__)


def read_baseline(port: int, project: int, label: int, token: str, waits: list, out: dict) -> None:
    """The same rhythm with two plain authenticated reads instead of lease + submit."""
    client = Annotator(port, token)
    for pause in waits:
        time.sleep(pause)
        for key in ("lease_ms", "submit_ms"):
            t0 = time.perf_counter()
            try:
                status, _ = client.request("GET", f"/api/projects/{project}/classes/")
                out[key].append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    out["errors"].append(f"read {status}")
            except (OSError, http.client.HTTPException) as exc:
                out["errors"].append(type(exc).__name__)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 2)


def run_clients(target, port, project, label, tokens, rounds, think_s, jitter):
    results = [
        {"lease_ms": [], "submit_ms": [], "pair_ms": [], "items": [], "errors": []} for _ in tokens
    ]
    threads = [
        threading.Thread(
            target=target,
            args=(port, project, label, tok, pauses(think_s, jitter, rounds, seed), res),
        )
        for seed, (tok, res) in enumerate(zip(tokens, results, strict=True))
    ]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, time.perf_counter() - t


def run_clients_measured(target, server_pid: int, *load) -> tuple[list, float, dict]:
    """run_clients, and the CPU the server and the load generator spent per request: on a
    machine whose speed drifts from run to run these move less than the tail latencies."""
    server_before, client_before = cpu_seconds(server_pid), cpu_seconds()
    results, wall = run_clients(target, *load)
    requests = sum(len(r["lease_ms"]) + len(r["submit_ms"]) for r in results) or 1
    cpu = {
        "server_cpu_ms_per_request": round(
            (cpu_seconds(server_pid) - server_before) * 1000 / requests, 2
        ),
        "client_cpu_ms_per_request": round((cpu_seconds() - client_before) * 1000 / requests, 2),
    }
    return results, wall, cpu


def run_load(port, server_pid, project, label, tokens, rounds, think_s, jitter, log) -> dict:
    jitter = jitter if think_s else 0
    load = (port, project, label, tokens, rounds, think_s, jitter)
    results, wall, cpu = run_clients_measured(annotate, server_pid, *load)
    baseline, baseline_wall, baseline_cpu = run_clients_measured(read_baseline, server_pid, *load)

    def every(key: str, of: list = results) -> list:
        return [v for r in of for v in r[key]]

    request_ms = every("lease_ms") + every("submit_ms")
    baseline_ms = every("lease_ms", baseline) + every("submit_ms", baseline)
    annotators_per_item: dict[int, set] = {}
    for item, token in every("items"):
        annotators_per_item.setdefault(item, set()).add(token)
    return {
        "think_ms": round(think_s * 1000),
        "think_jitter": jitter,
        "requests": len(request_ms),
        "errors": len(every("errors")),
        "error_kinds": dict(Counter(every("errors"))),
        "server_errors": [line for line in log.read_text().splitlines() if "Error" in line][-5:],
        # items handed to more than one annotator (a refresh returning my own lease is fine)
        "double_assigned": sum(1 for users in annotators_per_item.values() if len(users) > 1),
        "p50_ms": percentile(request_ms, 50),
        "p95_ms": percentile(request_ms, 95),
        "lease_next_p50_ms": percentile(every("lease_ms"), 50),
        "lease_next_p95_ms": percentile(every("lease_ms"), 95),
        "submit_p50_ms": percentile(every("submit_ms"), 50),
        "submit_p95_ms": percentile(every("submit_ms"), 95),
        "throughput_requests_per_s": round(len(request_ms) / wall, 1),
        **cpu,
        "baseline_read": {
            "p50_ms": percentile(baseline_ms, 50),
            "p95_ms": percentile(baseline_ms, 95),
            "errors": len(every("errors", baseline)),
            "throughput_requests_per_s": round(len(baseline_ms) / baseline_wall, 1),
            **baseline_cpu,
        },
    }


@dataclass(frozen=True)
class Served:
    """A running server with its prepared pool: where it listens and whom to sign in as."""

    port: int
    pid: int
    project: int
    label: int
    tokens: list[str]
    log: Path
    setup_seconds: float
    warm_up_seconds: float


@contextmanager
def our_server(db_env: dict, items: int, annotators: int, scored: bool) -> Iterator[Served]:
    """Our app (daphne, as `make run` serves it) on a fresh pool of `items` images."""
    env = {
        **os.environ,
        **db_env,
        "DJANGO_SETTINGS_MODULE": "annotator.settings.dev",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }
    t = time.perf_counter()
    project, label, tokens = prepare(env, items, annotators, scored)
    setup = round(time.perf_counter() - t, 1)
    port = free_port()
    log = Path(db_env["ANNOTATOR_VAR_DIR"]) / "server.log"
    daphne = str(Path(PYTHON).parent / "daphne")
    server = subprocess.Popen(
        [daphne, "-b", "127.0.0.1", "-p", str(port), "annotator.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        wait_for(port)
        warm = wait_until_idle(server.pid)
        yield Served(port, server.pid, project, label, tokens, log, setup, warm)
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_case(db_env: dict, args, scored: bool) -> dict:
    with our_server(db_env, args.items, args.annotators, scored) as served:
        case: dict = {
            "pool_items": args.items,
            "annotators": args.annotators,
            "setup_seconds": served.setup_seconds,
            "server_warm_up_seconds": served.warm_up_seconds,
            "loads": [],
        }
        for think_ms in args.think_ms:
            case["loads"].append(
                run_load(
                    served.port,
                    served.pid,
                    served.project,
                    served.label,
                    served.tokens,
                    args.rounds,
                    think_ms / 1000,
                    args.think_jitter,
                    served.log,
                )
            )
    return case


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--annotators", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=100, help="lease+submit pairs per annotator")
    parser.add_argument(
        "--think-ms",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[0, 1000],
        help="pause before each answer; 0 = back-to-back requests (saturation)",
    )
    parser.add_argument(
        "--think-jitter",
        type=float,
        default=0.5,
        help="each pause is think * uniform(1 - j, 1 + j); 0 = all annotators in lockstep",
    )
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--modes", default="random_order,scored")
    parser.add_argument(
        "--handlers",
        default="custom",
        help="custom (annotator/asgi.py and annotator/sqlite), stock (Django's own, "
        "ANNOTATOR_STOCK_DJANGO=1), or both: custom,stock (compared in the same run)",
    )
    args = parser.parse_args()

    report: dict = {"benchmark": "next_item", "cpu_count": os.cpu_count(), "databases": {}}
    wanted = args.databases.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        databases = {}
        if "sqlite" in wanted:
            databases["sqlite"] = lambda mode: {"ANNOTATOR_VAR_DIR": f"{tmp}/{mode}"}
        if "postgresql" in wanted:
            reason = postgres_unreachable_reason()
            if reason is None:
                databases["postgresql"] = lambda mode: {
                    "DATABASE_URL": fresh_postgres_database(),  # a new, empty one per case
                    "ANNOTATOR_VAR_DIR": f"{tmp}/pg-{mode}",
                }
            else:
                report["databases"]["postgresql"] = {"skipped": f"not reachable: {reason}"}
        handlers = args.handlers.split(",")
        for name, env_for in databases.items():
            for handler in handlers:
                stock = {"ANNOTATOR_STOCK_DJANGO": "1" if handler == "stock" else "0"}
                key = name if handlers == ["custom"] else f"{name}/{handler}"
                report["databases"][key] = {
                    mode: run_case(
                        {**env_for(f"{handler}-{mode}"), **stock}, args, scored=(mode == "scored")
                    )
                    for mode in args.modes.split(",")
                }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
