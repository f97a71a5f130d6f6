"""gunicorn's configuration, read from the working directory (the image's /app).

Everything else comes from the command line and the environment; in particular gunicorn
reads FORWARDED_ALLOW_IPS itself (the proxies whose X-Forwarded-Proto it believes), the
same variable creditguard/settings.py reads as TRUSTED_PROXIES.
"""

from __future__ import annotations

from typing import Any


def on_starting(server: Any) -> None:
    # Read the settings in the master before any worker boots: a configuration error
    # (no SECRET_KEY, no REDIS_URL) then ends gunicorn with the settings' one line,
    # instead of every worker failing at once and gunicorn tracing back while it halts.
    import creditguard.settings  # noqa: F401
