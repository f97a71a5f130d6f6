"""How the settings read the environment: strictly, and refusing to start on a bad value.

``creditguard/settings.py`` is still the one place that reads the environment; this
module only says how (as HackSoft's ``config/env.py`` does), so that the settings read as
a list of what is configured.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import environ


def refuse_to_start(reason: str) -> NoReturn:
    """End the process with one line on stderr instead of a traceback: manage.py,
    gunicorn and Celery all import these settings first. Exit status 3 is gunicorn's
    "worker failed to boot", on which its master stops instead of respawning workers."""
    print(f"CreditGuard will not start: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(3)


class StrictEnv(environ.Env):
    """django-environ, except that a switch says yes or no: a typo ("ture") refuses to
    start instead of quietly meaning off; and a number is a number of at least zero
    (every count, size and duration the settings read), or the process refuses to start
    in one line instead of a ValueError's traceback."""

    SWITCH_WORDS = {*environ.Env.BOOLEAN_TRUE_STRINGS, "false", "off", "n", "no", "0", ""}

    def bool(self, var: str, default: bool | environ.NoValue = environ.Env.NOTSET) -> bool:
        raw = self.ENVIRON.get(var)
        if raw is not None and raw.strip().lower() not in self.SWITCH_WORDS:
            refuse_to_start(f"{var} must be true or false, not {raw!r}.")
        return super().bool(var, default=default)

    def int(self, var: str, default: Any = environ.Env.NOTSET) -> Any:
        return self._number(var, default, int, "a whole number")

    def float(self, var: str, default: Any = environ.Env.NOTSET) -> Any:
        return self._number(var, default, float, "a number")

    def _number(self, var: str, default: Any, kind: Callable[[str], Any], words: str) -> Any:
        raw = self.ENVIRON.get(var)
        if raw is None:
            return super().get_value(var, cast=kind, default=default)
        try:
            value = kind(raw.strip())
        except ValueError:
            refuse_to_start(f"{var} must be {words} of 0 or more, not {raw!r}.")
        if value < 0:
            refuse_to_start(f"{var} must be {words} of 0 or more, not {raw!r}.")
        return value
