"""Benchmark: our lease-next + submit round trip against Label Studio's, in one run.

Label Studio (the PyPI package, `--label-studio-version`, default 1.23.2) is installed into
its own virtualenv (`var/bench/label-studio-<version>/`, kept for the next run) and started
the way its documentation starts a pip install: `label-studio start` (Django's threaded
server), with its default SQLite database or, like ours, PostgreSQL. When it cannot be
installed or started the report says why and measures ours alone.

Per database, both apps get a pool of `--items` images (Label Studio: tasks imported through
its API in batches of 10,000; ours: `bench/next_item.py`'s fill), the same annotators and the
same client (bench/next_item.py's: one keep-alive http.client connection per annotator):

- ours: `POST /api/projects/{id}/lease-next/`, then `POST .../items/{item}/submit/`;
- Label Studio: `GET /api/projects/{id}/next` (the labeling stream's next task, locked for
  the annotator), then `POST /api/tasks/{id}/annotations/` with a choices result.

A round trip is the pair. Loads: one annotator back to back (`--single-rounds` pairs), and
ten annotators each answering about once a second (`--ten-rounds` pairs each, think time
1 s ± 50 %). Prints p50 and p95 of the round trip (and of each request) for each app, and
ours against theirs (`speedup`: their milliseconds over ours). Goal (#24): ≥ 10× at p50
and p95, both loads, both databases; ours at p95 < 50 ms per request with ten annotators.

    .venv/bin/python bench/peer_label_studio.py [--items 100000] [--databases sqlite,postgresql]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import venv
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.next_item import (  # noqa: E402
    POSTGRES_ADMIN_URL,
    LabelingApi,
    annotate,
    cpu_seconds,
    free_port,
    fresh_postgres_database,
    our_server,
    percentile,
    postgres_unreachable_reason,
    run_clients,
    wait_until_idle,
)

LABEL_CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="label" toName="image">'
    '<Choice value="a"/><Choice value="b"/><Choice value="c"/><Choice value="d"/>'
    "</Choices></View>"
)
ADMIN_TOKEN = "bench-admin-token-0123456789"

LABEL_STUDIO = LabelingApi(
    lease=lambda project: ("GET", f"/api/projects/{project}/next", None),
    item_id=lambda body: body["id"],
    submit=lambda project, item, label: (
        "POST",
        f"/api/tasks/{item}/annotations/",
        {
            "result": [
                {
                    "from_name": "label",
                    "to_name": "image",
                    "type": "choices",
                    "value": {"choices": [label]},
                }
            ],
            "lead_time": 0.5,
        },
    ),
)

# Run with Label Studio's own Python: its annotators, in its organisation, with API tokens.
USERS_SCRIPT = r"""
import os, sys
sys.path.insert(0, os.path.dirname(__import__("label_studio").__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "label_studio.core.settings.label_studio")
import django
django.setup()
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
org = Organization.objects.first()
tokens = []
for i in range(int(sys.argv[1])):
    user = User.objects.create_user(email=f"annotator{i}@example.com", password="bench-password-1")
    org.add_user(user)
    user.active_organization = org
    user.save()
    tokens.append(Token.objects.get_or_create(user=user)[0].key)
print(" ".join(tokens))
"""


def label_studio_python(version: str) -> tuple[Path | None, str | None]:
    """(its Python, None), or (None, why not): the virtualenv is made once and kept."""
    home = ROOT / "var" / "bench" / f"label-studio-{version}"
    python = home / "bin" / "python"
    if (home / ".installed").exists():
        return python, None
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"label-studio=={version}"],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or ""
        return None, f"pip install label-studio=={version} failed: {error} {detail[-500:]}"
    (home / ".installed").touch()
    return python, None


class LabelStudio:
    """`label-studio start` on a data folder (and a database), with a project of `items`
    tasks and `annotators` users with tokens."""

    def __init__(self, python: Path, folder: Path, database_env: dict):
        self.python, self.folder = python, folder
        self.env = {**os.environ, **database_env, "LABEL_STUDIO_BASE_DATA_DIR": str(folder)}
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "LabelStudio":
        self.folder.mkdir(parents=True, exist_ok=True)
        executable = self.python.parent / "label-studio"
        self.process = subprocess.Popen(
            [
                str(executable), "start", "--no-browser", "--data-dir", str(self.folder),
                "--internal-host", "127.0.0.1", "--port", str(self.port),
                "--username", "bench@example.com", "--password", "bench-password-1",
                "--user-token", ADMIN_TOKEN, "--enable-legacy-api-token",
                "--log-level", "WARNING",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "server.log").open("w"),
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"label-studio exited: {self.log_tail()}")
            try:
                status, _ = self.request("GET", "/api/projects")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(1)
        raise RuntimeError(f"label-studio did not answer in 300 s: {self.log_tail()}")

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def log_tail(self) -> str:
        return (self.folder / "server.log").read_text()[-800:]

    def request(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        import http.client

        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        headers = {"Authorization": f"Token {ADMIN_TOKEN}", "Content-Type": "application/json"}
        try:
            connection.request(method, path, json.dumps(body).encode() if body else None, headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def project_with_tasks(self, items: int) -> int:
        status, body = self.request(
            "POST",
            "/api/projects",
            {"title": "bench", "label_config": LABEL_CONFIG, "maximum_annotations": 1},
        )
        if status != 201:
            raise RuntimeError(f"creating the project: {status} {body[:300]!r}")
        project = json.loads(body)["id"]
        for start in range(0, items, 10_000):
            batch = range(start, min(items, start + 10_000))
            tasks = [{"image": f"/data/upload/{i}.png"} for i in batch]
            status, body = self.request("POST", f"/api/projects/{project}/import", tasks)
            if status != 201:
                raise RuntimeError(f"importing tasks: {status} {body[:300]!r}")
        return project

    def annotator_tokens(self, count: int) -> list[str]:
        out = subprocess.run(
            [str(self.python), "-c", USERS_SCRIPT, str(count)],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.split()[-count:]


def measure(annotate_target, port, pid, project, label, tokens, rounds, think_s, jitter) -> dict:
    server_before = cpu_seconds(pid)
    started = time.perf_counter()
    results, wall = run_clients(
        annotate_target, port, project, label, tokens, rounds, think_s, jitter
    )

    def every(key: str) -> list:
        return [v for r in results for v in r[key]]

    given: dict = {}
    for item, token in every("items"):
        given.setdefault(item, set()).add(token)
    requests = len(every("lease_ms")) + len(every("submit_ms"))
    return {
        "annotators": len(tokens),
        "think_ms": round(think_s * 1000),
        "round_trips": len(every("pair_ms")),
        "errors": len(every("errors")),
        "error_kinds": dict(Counter(every("errors"))),
        "double_assigned": sum(1 for users in given.values() if len(users) > 1),
        "round_trip_p50_ms": percentile(every("pair_ms"), 50),
        "round_trip_p95_ms": percentile(every("pair_ms"), 95),
        "request_p95_ms": percentile(every("lease_ms") + every("submit_ms"), 95),
        "next_p50_ms": percentile(every("lease_ms"), 50),
        "submit_p50_ms": percentile(every("submit_ms"), 50),
        "server_cpu_ms_per_request": round(
            (cpu_seconds(pid) - server_before) * 1000 / max(requests, 1), 2
        ),
        "seconds": round(time.perf_counter() - started, 1),
        "wall_s": round(wall, 1),
    }


def loads(args) -> list[tuple[str, int, int, float]]:
    """(name, annotators, rounds each, think seconds)."""
    return [("single", 1, args.single_rounds, 0.0), ("ten", 10, args.ten_rounds, 1.0)]


def ours_for(database: str, folder: Path, args) -> dict:
    env = {"ANNOTATOR_VAR_DIR": str(folder / "ours")}
    if database == "postgresql":
        env["DATABASE_URL"] = fresh_postgres_database()
    out = {}
    with our_server(env, args.items, 10, scored=False) as served:
        for name, annotators, rounds, think in loads(args):
            tokens = served.tokens[:annotators]
            out[name] = measure(
                annotate, served.port, served.pid, served.project, served.label, tokens,
                rounds, think, args.think_jitter,
            )  # fmt: skip
            print(f"ours {database} {name}: {out[name]}", file=sys.stderr)
    return {"setup_seconds": served.setup_seconds, **out}


def label_studio_database_env(database: str) -> dict:
    if database == "sqlite":
        return {"DJANGO_DB": "sqlite"}
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute("DROP DATABASE IF EXISTS label_studio_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE label_studio_bench")
    host = POSTGRES_ADMIN_URL.split("@", 1)[1].split("/", 1)[0]
    name, _, port = host.partition(":")
    return {
        "DJANGO_DB": "postgresql",
        "POSTGRE_NAME": "label_studio_bench",
        "POSTGRE_USER": POSTGRES_ADMIN_URL.split("//", 1)[1].split("@", 1)[0].split(":")[0],
        "POSTGRE_PASSWORD": "",
        "POSTGRE_HOST": name,
        "POSTGRE_PORT": port or "5432",
    }


def theirs_for(database: str, folder: Path, python: Path, args) -> dict:
    started = time.perf_counter()
    with LabelStudio(python, folder / "label-studio", label_studio_database_env(database)) as ls:
        project = ls.project_with_tasks(args.items)
        tokens = ls.annotator_tokens(10)
        setup = round(time.perf_counter() - started, 1)
        assert ls.process is not None
        wait_until_idle(ls.process.pid)

        def annotate_label_studio(port, project, label, token, waits, out):
            annotate(port, project, label, token, waits, out, api=LABEL_STUDIO)

        out = {}
        for name, annotators, rounds, think in loads(args):
            out[name] = measure(
                annotate_label_studio, ls.port, ls.process.pid, project, "a",
                tokens[:annotators], rounds, think, args.think_jitter,
            )  # fmt: skip
            print(f"label studio {database} {name}: {out[name]}", file=sys.stderr)
    return {"setup_seconds": setup, **out}


def speedups(ours: dict, theirs: dict, args) -> dict:
    out = {}
    for name, *_ in loads(args):
        for q in ("round_trip_p50_ms", "round_trip_p95_ms"):
            mine, other = ours[name][q], theirs[name][q]
            out[f"{name}_{q.removesuffix('_ms')}"] = round(other / mine, 1) if mine else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--single-rounds", type=int, default=200)
    parser.add_argument("--ten-rounds", type=int, default=30)
    parser.add_argument("--think-jitter", type=float, default=0.5)
    parser.add_argument("--label-studio-version", default="1.23.2")
    args = parser.parse_args()

    report: dict = {
        "benchmark": "peer_label_studio",
        "items": args.items,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "label_studio": {"version": args.label_studio_version, "server": "label-studio start"},
        "databases": {},
    }
    python, why_not = label_studio_python(args.label_studio_version)
    if why_not:
        report["label_studio"]["skipped"] = why_not
    for database in args.databases.split(","):
        if database == "postgresql" and (reason := postgres_unreachable_reason()):
            report["databases"][database] = {"skipped": f"PostgreSQL not reachable: {reason}"}
            continue
        with tempfile.TemporaryDirectory(prefix="peer-bench-") as tmp:
            entry: dict = {"ours": ours_for(database, Path(tmp), args)}
            if python is not None:
                try:
                    entry["label_studio"] = theirs_for(database, Path(tmp), python, args)
                    entry["speedup"] = speedups(entry["ours"], entry["label_studio"], args)
                except (RuntimeError, OSError, subprocess.SubprocessError) as error:
                    entry["label_studio"] = {"skipped": f"{type(error).__name__}: {error}"}
            report["databases"][database] = entry
    report["goal"] = "speedup >= 10 at p50 and p95, single and ten annotators, each database"
    report["goal_met"] = bool(report["databases"]) and all(
        "speedup" in entry and all(v is not None and v >= 10 for v in entry["speedup"].values())
        for entry in report["databases"].values()
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
