"""The image's build step runs as written: no Docker engine here, so the test runs the
Dockerfile's own collectstatic command line, with its environment, in production mode."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_step_environment() -> dict[str, str]:
    """The variables the Dockerfile's ENV line and the collectstatic RUN step set."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        for command in line.split("&&"):
            if command.startswith("ENV ") or "collectstatic" in command:
                for word in shlex.split(command):
                    match = re.fullmatch(r"([A-Z_]+)=(.*)", word)
                    if match:
                        found[match[1]] = match[2]
    return found


def test_the_image_build_step_collects_static_files_in_production_mode(tmp_path):
    step = build_step_environment()
    assert step["CREDITGUARD_ENV"] == "production"
    environment = {
        "PATH": os.environ["PATH"],
        "CREDITGUARD_VAR_DIR": str(tmp_path),
        **step,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "admin" / "css" / "base.css").exists()
    # /api/docs/'s Swagger UI comes from here too (WhiteNoise serves the hashed names the
    # manifest maps), not from a CDN.
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())["paths"]
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        collected = manifest[f"drf_spectacular_sidecar/swagger-ui-dist/{name}"]
        assert (tmp_path / "static" / collected).exists(), collected
