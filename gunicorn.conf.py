"""gunicorn's configuration, read from the working directory (the image's /app).

Everything else comes from the command line and the environment; in particular gunicorn
reads FORWARDED_ALLOW_IPS itself (the proxies whose X-Forwarded-Proto it believes), the
same variable creditguard/settings.py reads as TRUSTED_PROXIES.

Metrics: gunicorn's workers are separate processes, so prometheus_client runs in its
multiprocess mode (creditguard/metrics.py): every worker writes its counters to files in
PROMETHEUS_MULTIPROC_DIR and /metrics, served by any worker, sums them. The variable is
set here, before any worker imports prometheus_client; without one from the environment
a fresh directory of this gunicorn's own is made. Celery workers given the same
directory (one host, or a shared volume) are summed too (docs/OPERATIONS.md).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="creditguard-metrics-")
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

# The access line is the app's (creditguard.access, JSON with the request id and route);
# gunicorn's own would be a second, unstructured line per request.
accesslog = None


def on_starting(server: Any) -> None:
    # Read the settings in the master before any worker boots: a configuration error
    # (no SECRET_KEY, no REDIS_URL) then ends gunicorn with the settings' one line,
    # instead of every worker failing at once and gunicorn tracing back while it halts.
    import creditguard.settings  # noqa: F401


def child_exit(server: Any, worker: Any) -> None:
    # A worker that ended (restarted, killed) leaves its counters' files, which still
    # count; its live gauges, if any, are dropped.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
