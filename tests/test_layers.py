"""The layers of docs/ARCHITECTURE.md hold: kernel ← tenants ← metering | notifications ←
policies ← console, checked by import-linter's contracts in pyproject.toml (imports inside
functions included), so a wrong-way import fails the suite as well as scripts/test.sh."""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_dependencies_run_downhill(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(no_cache=True, no_logo=True, limit_to_contracts=("layers",)) == 0


def test_notifications_knows_neither_metering_nor_policies(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert (
        lint_imports(no_cache=True, no_logo=True, limit_to_contracts=("notifications-leaf",)) == 0
    )
