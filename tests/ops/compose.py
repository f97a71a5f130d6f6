"""docker-compose.yml read as Compose reads it: the YAML with its ``<<`` merges, and
``${VAR}`` interpolation from an environment (the shell's and ``.env``), so that tests
can check the file and run the commands it gives each service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# $$ (a literal $), ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error},
# ${NAME?error}, ${NAME:+alt}, ${NAME+alt}, $NAME
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(Exception):
    """A ${NAME:?message} whose variable is unset (or empty)."""


def load() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


def variables(text: str | None = None) -> set[str]:
    """Every variable the compose file takes from the environment."""
    text = COMPOSE_FILE.read_text() if text is None else text
    found = set()
    for match in _VARIABLE.finditer(text):
        name = match["braced"] or match["plain"]
        if name:
            found.add(name)
    return found


def interpolate(value: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"] or "", match["arg"] or ""
        present = name in env and (not op.startswith(":") or env[name] != "")
        if op.endswith("-"):
            return env[name] if present else arg
        if op.endswith("?"):
            if not present:
                raise InterpolationError(f"{name}: {arg}")
            return env[name]
        if op.endswith("+"):
            return arg if present else ""
        return env.get(name, "")

    return _VARIABLE.sub(replace, value)


def resolve(node: Any, env: dict[str, str]) -> Any:
    """``node`` with every string interpolated from ``env``."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    return node


def env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """NAME=value lines of a .env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def start_order(services: dict[str, Any]) -> list[str]:
    """The services in the order Compose starts them: each after those it depends on."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"a dependency cycle: {(*path, name)}"
        if name in order:
            return
        for dependency in services[name].get("depends_on") or {}:
            visit(dependency, (*path, name))
        order.append(name)

    for name in services:
        visit(name, ())
    return order
