"""The operations settings (metrics and logs), read from the environment as
``creditguard/settings.py`` reads the rest, which imports them from here.

docs/OPERATIONS.md ("Metrics and logs") explains each.
"""

from __future__ import annotations

from creditguard.env import StrictEnv, refuse_to_start
from creditguard.logs import logging_config

env = StrictEnv()
_PRODUCTION = env.str("CREDITGUARD_ENV", default="development") == "production"

# /metrics (creditguard.metrics.metrics_refusal): every configured condition must hold —
# the client's address in one of METRICS_ALLOWED_NETWORKS (CIDR, comma-separated) and
# 'Authorization: Bearer <METRICS_TOKEN>'. Neither configured: 404. Outside the
# networks: 404; a missing or wrong token: 401. Outside production the loopback may read.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list(
    "METRICS_ALLOWED_NETWORKS", default=[] if _PRODUCTION else ["127.0.0.1/32", "::1/128"]
)
if _PRODUCTION and METRICS_TOKEN and len(METRICS_TOKEN) < 24:
    refuse_to_start("METRICS_TOKEN must be a random value of 24+ characters.")
try:
    import ipaddress

    for _network in METRICS_ALLOWED_NETWORKS:
        ipaddress.ip_network(_network, strict=False)
except ValueError as _exc:
    refuse_to_start(f"METRICS_ALLOWED_NETWORKS: {_exc}.")

# One line per record on stderr: 'json' (python-json-logger; the default in production,
# for the log collector) or 'plain' (the default elsewhere, for people reading a console).
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if _PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    refuse_to_start(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}.")
LOGGING = logging_config(log_format=LOG_FORMAT, level=env.str("LOG_LEVEL", default="INFO"))
