"""Authorization over HTTP against a trivial authenticated endpoint on the same stack.

    python -m bench.authorize [--clients 16] [--requests 300] [--workers 4]

Starts gunicorn on a scratch PostgreSQL database. The floor is ``GET /api/v1/key``
(authentication and a tiny response, nothing else); then ``POST /api/v1/authorizations``
from as many clients against several tenants, and against one hot tenant × channel
whose hard limit the run exhausts. Client processes on the same machine; counts the
units allowed past the ceiling (overspend, must be 0). Writes docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import statistics
import time
from typing import Any

import orjson

from bench.common import gunicorn, recreate_database, setup_django, write_section

HOT_CEILING = 3000
Call = tuple[str, str, bytes | None, str]  # method, path, body, key


def client(port: int, requests: list[Call], barrier: Any, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    answers: list[tuple[str, int]] = []
    barrier.wait()
    for method, path, body, key in requests:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        started = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
        if method == "POST":
            data = orjson.loads(payload)
            answers.append((data["decision"], data["quantity"]))
    conn.close()
    out.put((latencies, answers))


def scenario(port: int, plans: list[list[Call]]) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(plans) + 1)
    out = ctx.Queue()
    processes = [ctx.Process(target=client, args=(port, plan, barrier, out)) for plan in plans]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    results = [out.get(timeout=600) for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
        if process.exitcode:
            raise RuntimeError("a client failed")
    latencies = [lat for lats, _ in results for lat in lats]
    answers = [a for _, ans in results for a in ans]
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "rate": len(latencies) / elapsed,
        "p50": quantiles[49] * 1000,
        "p99": quantiles[98] * 1000,
        "answers": answers,
        "requests": len(latencies),
    }


# One SMS unit: the request of every authorization run.
AUTHORIZE_BODY = orjson.dumps({"channel": "sms", "quantity": 1})


def spread_tenants(count: int, prefix: str = "bench") -> list[str]:
    """``count`` tenants whose SMS credits (10⁹) no run exhausts; their API keys."""
    from django.conf import settings

    from metering.models import Channel
    from policies.services.rules import limit_rule_set
    from tenants.models import Scope
    from tenants.services import api_key_create, tenant_create

    sms = Channel.objects.get(code="sms")
    # The bench's tenants are set up, not changed: their terms apply at once.
    settings.LIMIT_NOTICE_DAYS = 0
    keys = []
    for n in range(count):
        tenant = tenant_create(slug=f"{prefix}-{n}", name=f"Bench {n}", time_zone="UTC")
        limit_rule_set(tenant=tenant, channel=sms, included_units=10**9, reason="bench", actor=None)
        keys.append(api_key_create(tenant=tenant, name="bench", scopes=[Scope.USAGE_WRITE]).raw_key)
    return keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=300, help="requests per client")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--tenants", type=int, default=8, help="tenants of the spread run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    url = recreate_database()
    setup_django(url)

    from metering.models import Authorization, Balance, Channel
    from policies.services.rules import limit_rule_set
    from tenants.models import Scope
    from tenants.services import api_key_create, tenant_create

    sms = Channel.objects.get(code="sms")
    keys = spread_tenants(args.tenants)
    hot_tenants = []
    for r in range(args.rounds):
        hot = tenant_create(slug=f"bench-hot-{r}", name=f"Hot {r}", time_zone="UTC")
        limit_rule_set(
            tenant=hot, channel=sms, included_units=HOT_CEILING, hard_limit=0, reason="bench",
            actor=None,
        )  # fmt: skip
        hot_tenants.append(
            (hot, api_key_create(tenant=hot, name="bench", scopes=[Scope.USAGE_WRITE]).raw_key)
        )

    body: bytes | None = AUTHORIZE_BODY
    n = args.requests
    floor_plans: list[list[Call]] = [
        [("GET", "/api/v1/key", None, keys[(c + i) % len(keys)]) for i in range(n)]
        for c in range(args.clients)
    ]
    spread_plans: list[list[Call]] = [
        [("POST", "/api/v1/authorizations", body, keys[(c + i) % len(keys)]) for i in range(n)]
        for c in range(args.clients)
    ]
    runs: dict[str, list[dict[str, Any]]] = {"floor": [], "spread": [], "hot": []}
    with gunicorn(url, workers=args.workers) as port:
        scenario(port, [plan[:20] for plan in floor_plans])  # warm every worker
        # Interleaved rounds, so that drift in the shared machine hits every run alike.
        for _, hot_key in hot_tenants:
            hot_plans: list[list[Call]] = [
                [("POST", "/api/v1/authorizations", body, hot_key) for _ in range(n)]
                for _ in range(args.clients)
            ]
            runs["floor"].append(scenario(port, floor_plans))
            runs["spread"].append(scenario(port, spread_plans))
            runs["hot"].append(scenario(port, hot_plans))

    def median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
        return sorted(results, key=lambda result: result["rate"])[len(results) // 2]

    floor = median_run(runs["floor"])
    spread = median_run(runs["spread"])
    hot_run = median_run(runs["hot"])
    overspend = 0
    hot_allowed = []
    for (hot, _), result in zip(hot_tenants, runs["hot"], strict=True):
        allowed = sum(q for decision, q in result["answers"] if decision != "deny")
        reserved = Balance.objects.get(tenant=hot, channel=sms).reserved
        overspend += max(allowed - HOT_CEILING, 0) + max(reserved - HOT_CEILING, 0)
        hot_allowed.append(allowed)
    held = Authorization.objects.filter(
        tenant__in=[h for h, _ in hot_tenants], status="held"
    ).count()

    def row(name: str, result: dict[str, Any]) -> str:
        return (
            f"| {name} | {result['rate']:,.0f} | {result['rate'] / floor['rate']:.0%} | "
            f"{result['p50']:.1f} ms | {result['p99']:.1f} ms |"
        )

    goal = (
        spread["rate"] >= 0.7 * floor["rate"] and spread["p99"] <= 20 and hot_run["p99"] <= 20
        and overspend == 0
    )  # fmt: skip
    text = f"""
{args.clients} concurrent client processes, {n} requests each ({args.clients * n:,} per run),
gunicorn with {args.workers} sync workers on PostgreSQL, on the same machine; {args.rounds}
interleaved rounds, the median round of each run shown.

| run | requests/s | of floor | p50 | p99 |
|---|---:|---:|---:|---:|
{row("floor: `GET /api/v1/key` (authentication only)", floor)}
{row(f"`POST /api/v1/authorizations`, {args.tenants} tenants", spread)}
{row("`POST /api/v1/authorizations`, one hot tenant × channel", hot_run)}

Hot tenant (one per round): ceiling {HOT_CEILING} units (hard limit 0), {args.clients * n:,}
one-unit requests a round: {", ".join(map(str, hot_allowed))} allowed, {held} reservations held
in all; **overspend {overspend}** (goal 0).
Goals (≥ 70 % of the floor, p99 ≤ 20 ms, zero overspend): {"met" if goal else "not all met"}.
"""
    print(text)
    if not args.no_write:
        write_section("Authorization", text)


if __name__ == "__main__":
    main()
