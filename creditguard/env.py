"""How the settings read the environment: strictly, and refusing to start on a bad value.

``creditguard/settings.py`` is still the one place that reads the environment; this
module only says how (as HackSoft's ``config/env.py`` does), so that the settings read as
a list of what is configured.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import environ


def refuse_to_start(reason: str) -> NoReturn:
    """End the process with one line on stderr instead of a traceback: manage.py,
    gunicorn and Celery all import these settings first. Exit status 3 is gunicorn's
    "worker failed to boot", on which its master stops instead of respawning workers."""
    print(f"CreditGuard will not start: {reason}", file=sys.stderr, flush=True)
    raise SystemExit(3)


class StrictEnv(environ.Env):
    """django-environ, except that a switch says yes or no: a typo ("ture") refuses to
    start instead of quietly meaning off."""

    SWITCH_WORDS = {*environ.Env.BOOLEAN_TRUE_STRINGS, "false", "off", "n", "no", "0", ""}

    def bool(self, var: str, default: bool | environ.NoValue = environ.Env.NOTSET) -> bool:
        raw = self.ENVIRON.get(var)
        if raw is not None and raw.strip().lower() not in self.SWITCH_WORDS:
            refuse_to_start(f"{var} must be true or false, not {raw!r}.")
        return super().bool(var, default=default)
