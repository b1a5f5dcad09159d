"""The compose files, the Dockerfile and the dependency lists, read as an operator would.

There is no Docker engine here: `docker-compose config` (Debian's, installed by make test)
validates both variants, and the files are read for what the app needs of them."""

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
SECRETS = {
    "DJANGO_SECRET_KEY": "k" * 60,
    "POSTGRES_PASSWORD": "db-secret",
    "ANNOTATOR_ADMIN_PASSWORD": "admin-secret",
}
GPU = ["-f", "docker-compose.yml", "-f", "docker-compose.gpu.yml"]


def compose_config(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (make test installs Debian's with apt)")
    prefixes = ("AWS_", "DJANGO_", "POSTGRES_", "ANNOTATOR_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return subprocess.run(
        ["docker-compose", *args, "config"],
        cwd=ROOT,
        env={**clean, **(env if env is not None else SECRETS)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def resolved(*args: str) -> dict:
    result = compose_config(*args)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_cpu_compose_is_valid_and_asks_for_no_gpu():
    services = resolved()["services"]
    assert {"db", "redis", "web", "worker"} <= set(services)
    assert services["minio"]["profiles"] == ["minio"]  # started only with --profile minio
    for service in services.values():
        assert "deploy" not in service
    assert services["web"]["build"]["args"]["TORCH_INDEX_URL"].endswith("/whl/cpu")


def test_gpu_override_is_valid_and_gives_the_worker_a_gpu_and_a_cuda_image():
    services = resolved(*GPU)["services"]
    device = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert "deploy" not in services["web"]
    assert services["web"]["build"]["args"]["TORCH_INDEX_URL"] == "https://pypi.org/simple"
    assert services["worker"]["image"] == services["web"]["image"] == "annotator:gpu"


def test_minio_profile_adds_object_storage():
    result = compose_config("--profile", "minio", env={**SECRETS})
    assert result.returncode == 0, result.stderr
    assert {"minio", "minio-bucket"} <= set(yaml.safe_load(result.stdout)["services"])


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing):
    result = compose_config(env={k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0 and missing in result.stderr


def test_compose_file_holds_no_secret():
    text = (ROOT / "docker-compose.yml").read_text() + (ROOT / "docker-compose.gpu.yml").read_text()
    for value in re.findall(r"(?:PASSWORD|SECRET[A-Z_]*|postgres://[^$\s]*):\s*(\S+)", text):
        assert value.startswith("${"), value
    assert "annotator:annotator@" not in text


def test_web_and_worker_share_database_redis_storage_and_one_image():
    services = resolved()["services"]
    web, worker = services["web"], services["worker"]
    env = web["environment"]
    assert env["DJANGO_SETTINGS_MODULE"] == "annotator.settings.prod"
    assert env["DATABASE_URL"].startswith("postgres://annotator:db-secret@db:5432/")
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert env["ANNOTATOR_STOCK_DJANGO"] == "1"  # ours did not win on PostgreSQL (docs)
    shared = ("DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "ANNOTATOR_VAR_DIR", "AWS_S3_ENDPOINT_URL")
    for key in shared:
        assert worker["environment"][key] == env[key], key
    assert worker["volumes"] == web["volumes"]
    assert "build" not in worker and worker["image"] == web["image"]  # built once
    assert worker["depends_on"]["web"]["condition"] == "service_healthy"  # migrated first
    assert "manage.py worker" in worker["command"]
    assert "daphne" in web["command"] and "admin_from_env" in web["command"]
    for name in ("db", "redis", "web", "worker"):
        assert services[name]["restart"] == "unless-stopped", name
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz/" in " ".join(web["healthcheck"]["test"])
    beat = worker["environment"]["ANNOTATOR_WORKER_HEARTBEAT_FILE"]
    assert beat in " ".join(worker["healthcheck"]["test"])


def test_image_installs_cpu_torch_by_default_locked_requirements_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in dockerfile
    assert '--index-url "$TORCH_INDEX_URL" -r requirements-torch.txt' in dockerfile
    assert "--require-hashes -r requirements.txt" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", line):
            pins.setdefault(match.group(1).lower().replace("_", "-"), match.group(2))
    return pins


def _declared(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        name, version = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)$", line).groups()
        out[name.lower().replace("_", "-")] = version
    return out


def test_pyproject_is_the_one_list_and_the_locks_agree_with_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _declared(project["dependencies"])
    dev = _declared(project["optional-dependencies"]["dev"])
    torch = _pins(ROOT / "requirements-torch.txt")
    assert set(torch) == {"torch", "torchvision"}
    locked, locked_dev = _pins(ROOT / "requirements.txt"), _pins(ROOT / "requirements-dev.txt")
    for name, version in runtime.items():
        assert {**locked, **torch}.get(name) == version, f"{name}: run make lock"
        assert {**locked_dev, **torch}.get(name) == version, f"{name}: run make lock"
    for name, version in dev.items():
        assert locked_dev.get(name) == version, f"{name}: run make lock"
    for tool in ("pytest", "ruff", "mypy", "moto", "playwright", "schemathesis", "uv"):
        assert tool in dev and tool not in locked, f"{tool}: make run must not install it"
    assert "django-tasks" not in runtime  # Django 6 has django.tasks; nothing imports it


def test_lock_files_pin_every_package_with_hashes():
    for path in (ROOT / "requirements.txt", ROOT / "requirements-dev.txt"):
        entries = re.split(r"\n(?=[a-z0-9])", path.read_text().split("\n", 1)[1])
        for entry in entries:
            if entry.strip():
                assert "==" in entry and "--hash=sha256:" in entry, entry.splitlines()[0]
