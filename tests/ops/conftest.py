"""Operations tests: the compose file, graceful shutdown, backup and restore. Some start
real processes and take tens of seconds; they are marked ``slow`` (deselect with
``-m "not slow"`` while working) and run in scripts/test.sh like every other test."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts real processes (tens of seconds)")
