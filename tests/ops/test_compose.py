"""docker-compose.yml and .env.example: what `docker compose up` starts, checked from the
file itself, and its services' commands run in Compose's order against the test
PostgreSQL and a Redis of the test's own (no Docker engine needed)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet

from tests.ops import compose, stack
from tests.ops.compose import ROOT
from tests.workers import RedisServer, free_port, wait_for

LONG_RUNNING = {"postgres", "redis", "web", "worker", "beat"}
RESTARTS = {"always", "unless-stopped", "on-failure"}


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(
    not docker_compose_available(),
    reason="the docker compose plugin is not installed here; the YAML tests below still run",
)
def test_docker_compose_accepts_the_file_with_the_example_environment(tmp_path):
    env = {**compose.env_file(), **required_values()}
    env_path = tmp_path / ".env"
    env_path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    result = subprocess.run(
        ["docker", "compose", "--env-file", str(env_path), "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_migrations_run_once_before_web_worker_and_beat():
    services = compose.load()["services"]
    migrate = services["migrate"]
    assert migrate["command"][-3:] == ["manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"  # a one-shot: it ends, and stays ended
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
    # migrate itself waits for healthy servers.
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert migrate["depends_on"]["redis"] == {"condition": "service_healthy"}
    order = compose.start_order(services)
    assert order.index("postgres") < order.index("migrate") < order.index("web")


def test_every_long_running_service_has_a_health_check_and_a_restart_policy():
    services = compose.load()["services"]
    assert set(services) == LONG_RUNNING | {"migrate"}
    for name in LONG_RUNNING:
        service = services[name]
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert service.get("restart") in RESTARTS, name


def test_exactly_one_beat_and_the_app_images_command_lines():
    document = compose.load()
    services = document["services"]
    beats = [
        name
        for name, service in services.items()
        if " beat" in " ".join(service.get("command", []))
    ]
    assert beats == ["beat"]
    beat = services["beat"]
    assert (beat.get("deploy") or {}).get("replicas", 1) == 1
    assert "scale" not in beat
    # No worker runs an embedded beat (`worker --beat` / -B) beside it.
    for name, service in services.items():
        command = service.get("command") or []
        if "worker" in command:
            assert "--beat" not in command and "-B" not in command, name
    assert services["web"]["command"][0] == "gunicorn"
    # SIGTERM's grace: docker waits longer than gunicorn lets requests finish.
    web_command = services["web"]["command"]
    graceful = int(web_command[web_command.index("--graceful-timeout") + 1])
    assert seconds(services["web"]["stop_grace_period"]) > graceful
    assert seconds(services["worker"]["stop_grace_period"]) > 180  # CELERY_TASK_TIME_LIMIT


def seconds(duration: str) -> int:
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, duration
    return int(parts[1] or 0) * 60 + int(parts[2] or 0)


def test_env_example_lists_every_variable_the_compose_file_reads():
    listed = set(compose.env_file())
    missing = compose.variables() - listed
    assert not missing, f".env.example lacks {sorted(missing)}"


def required_values() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "WEBHOOK_SECRET_KEYS": Fernet.generate_key().decode(),
    }


# A valid value for each setting production may refuse to start without.
VALID = {
    **required_values(),
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DATABASE_URL": "postgres://creditguard@127.0.0.1:5432/creditguard",
}


def load_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "creditguard.settings", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_env_example_names_every_setting_production_refuses_to_start_without():
    # Found by starting production's settings with nothing set, and adding the variable
    # each refusal names until they load.
    env = {"CREDITGUARD_ENV": "production"}
    required: list[str] = []
    for _ in range(20):
        result = load_settings(env)
        if result.returncode == 0:
            break
        refusal = re.search(r"production needs ([A-Z_]+)", result.stderr)
        assert refusal, result.stderr
        name = refusal[1]
        assert name in VALID, f"production needs {name}: give the test a valid value"
        required.append(name)
        env[name] = VALID[name]
    assert result.returncode == 0, result.stderr
    assert {"SECRET_KEY", "WEBHOOK_SECRET_KEYS", "REDIS_URL"} <= set(required)
    # Not refused, but useless without: the database (the default is a SQLite file) and
    # the host names (production answers 400 to every request without them).
    listed = compose.env_file()
    for name in [*required, "DATABASE_URL", "ALLOWED_HOSTS"]:
        assert name in listed, f".env.example lacks {name}"
    # Required secrets have no example value: compose refuses to start until they are set.
    assert listed["SECRET_KEY"] == "" and listed["WEBHOOK_SECRET_KEYS"] == ""
    environment = compose.resolve(compose.load()["x-app"]["environment"], listed | VALID)
    for secret in ("SECRET_KEY", "WEBHOOK_SECRET_KEYS"):
        with pytest.raises(compose.InterpolationError):
            compose.resolve(compose.load()["x-app"]["environment"], {**listed, secret: ""})
    # The example, with the secrets filled in, is a configuration production starts with.
    result = load_settings({k: str(v) for k, v in environment.items()})
    assert result.returncode == 0, result.stderr


def test_interpolation_reads_the_file_as_compose_does():
    env = {"A": "1", "EMPTY": ""}
    assert compose.interpolate("${A:-x} ${B:-x} ${EMPTY:-x} ${EMPTY-x} $$HOSTNAME $A", env) == (
        "1 x x  $HOSTNAME 1"
    )
    with pytest.raises(compose.InterpolationError):
        compose.interpolate("${EMPTY:?set it}", env)
    assert compose.variables("${A:-x} $$NOT ${B?e} $C") == {"A", "B", "C"}


# --- The services' own commands, run in Compose's order ---------------------------

IMAGE_VAR = "/app/var"  # the image's var directory (Dockerfile: WORKDIR /app)


def in_test(text: str, *, var: Path, port: int) -> str:
    """A word of a container's command line as run here: the image's var directory is the
    test's, and the web's port 8000 a free one on 127.0.0.1."""
    return (
        text.replace(IMAGE_VAR, str(var))
        .replace("0.0.0.0:8000", f"127.0.0.1:{port}")
        .replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    )


def check_command(test: list[str], **where: Any) -> list[str]:
    """A health check's argv (CMD runs as given, CMD-SHELL through the shell)."""
    kind, *rest = test
    words = [in_test(word, **where) for word in rest]
    return ["sh", "-c", words[0]] if kind == "CMD-SHELL" else words


@pytest.mark.slow
def test_the_services_commands_bring_the_stack_up_in_order(tmp_path):
    started = time.monotonic()
    services = compose.load()["services"]
    redis_server = RedisServer().start()
    database = stack.database_create("compose")
    var, port = tmp_path / "var", free_port()
    var.mkdir()  # the image makes /app/var (Dockerfile)
    where = {"var": var, "port": port}
    given = {
        **compose.env_file(),
        **required_values(),
        # The test's servers stand in for the postgres and redis services.
        "DATABASE_URL": f"{stack.server_url()}/{database}",
        "REDIS_URL": redis_server.url,
    }
    base = {
        # The image's PATH: its python, gunicorn and celery first.
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "HOSTNAME": socket.gethostname(),  # celery's node name, as in a container
        "CREDITGUARD_VAR_DIR": str(var),
        # No mail server here: messages go to files.
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }
    processes: list[stack.Process] = []
    resolved: dict[str, Any] = {}
    try:
        for name in compose.start_order(services):
            if name in {"postgres", "redis"}:
                continue
            service = resolved[name] = compose.resolve(services[name], given)
            env = {
                **base,
                **{k: in_test(str(v), **where) for k, v in service["environment"].items()},
            }
            if "PROMETHEUS_MULTIPROC_DIR" in env:
                env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / f"metrics-{name}")
            if "CELERY_METRICS_PORT" in env:
                env["CELERY_METRICS_PORT"] = str(free_port())
            argv = [in_test(word, **where) for word in service["command"]]
            assert argv[0] in {"python", "gunicorn", "celery"}, argv
            if service["restart"] == "no":
                # A one-shot: Compose starts the dependants once it exits with 0.
                result = subprocess.run(
                    argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
                )
                assert result.returncode == 0, result.stdout + result.stderr
            else:
                processes.append(stack.Process(name, argv, env))
            resolved[name]["env"] = env
        assert [p.name for p in processes] == ["web", "worker", "beat"]
        migrated = time.monotonic()

        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{url}/readyz") == 200, timeout=60, what="/readyz to be 200")
        ready = time.monotonic()
        # An operator's first steps (`docker compose run --rm web python manage.py …`).
        operator_env = resolved["web"]["env"]
        manage = [sys.executable, "manage.py"]
        subprocess.run(
            [*manage, "create_tenant", "--slug", "ops", "--name", "Ops"],
            cwd=ROOT,
            env=operator_env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        key = subprocess.run(
            [*manage, "create_api_key", "--tenant", "ops", "--scopes", "usage:write,usage:read"],
            cwd=ROOT,
            env=operator_env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {key}"}
        # 1,100 of the 2,000 SMS included by default: past the first warning (50 %).
        occurred = datetime.now(UTC).isoformat()
        batch: dict[str, Any] = {
            "events": [{"id": "c1", "channel": "sms", "quantity": 1100, "occurred_at": occurred}]
        }
        response = requests.post(
            f"{url}/api/v1/usage-events", json=batch, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 1

        def warned() -> bool:
            listed = requests.get(f"{url}/api/v1/notifications", headers=headers, timeout=30)
            return any(n["kind"] == "threshold_warning" for n in listed.json()["results"])

        # The worker evaluates it (beat's evaluate-pending would too, within 15 s).
        wait_for(warned, timeout=40, what="the worker's threshold warning")
        evaluated = time.monotonic()

        # Every long-running service's health check passes against what runs.
        for name in ("web", "worker", "beat"):
            check = check_command(resolved[name]["healthcheck"]["test"], **where)
            result = subprocess.run(
                check,
                cwd=ROOT,
                env=resolved[name]["env"],
                capture_output=True,
                text=True,
                timeout=40,
            )
            assert result.returncode == 0, (name, result.stdout, result.stderr)
        for process in processes:
            assert process.alive(), process.output()
        print(
            f"migrate {migrated - started:.1f} s, ready {ready - migrated:.1f} s, "
            f"evaluated {evaluated - ready:.1f} s, checks {time.monotonic() - evaluated:.1f} s"
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.stop()
            print(process.output()[-4000:])
        redis_server.stop()
        stack.database_drop(database)
    # SIGTERM ended each of them cleanly.
    assert [p.process.returncode for p in processes] == [0, 0, 0]


def answers(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


def test_the_image_copies_every_package_the_app_imports():
    # The containers run the image's code: a package left out of the Dockerfile's COPY
    # lines (console, portal and billing once were) stops web, worker and beat at import.
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages - {"tests", "bench"} <= copied, sorted(packages - copied)
