"""The benchmark's table: each anonchat figure beside its ceiling and its target."""

from __future__ import annotations

from typing import Any

RSS_LIMIT_MB = 150


def table(results: dict[str, Any]) -> str:
    """One plain-text table of every figure, ratio and target."""
    ceilings, baseline, anonchat = results["ceilings"], results["baseline"], results["anonchat"]
    accepted = anonchat["accepted"]
    persisted = anonchat["persisted"]
    capacity = anonchat["worker_capacity"]
    visible = anonchat["send_to_visible"]
    page = anonchat["get_messages"]
    once = anonchat["exactly_once"]
    two_hops = ceilings["two_hops"]["rate"]
    rows: list[tuple[str, str, str, str]] = [
        ("Ceilings", "", "", ""),
        ("  one hop: bare FastAPI endpoint", _rate(ceilings["one_hop"]), "", ""),
        ("  two hops: bare forwarding gateway", _rate(ceilings["two_hops"]), "", ""),
        ("  RQ enqueue, one job per call", f"{ceilings['rq_enqueue']:,.0f} jobs/s", "", ""),
        (
            "  Postgres insert, one row per commit",
            f"{ceilings['postgres_one_row_per_commit']:,.0f} rows/s",
            "",
            "",
        ),
        (
            "  Postgres insert, 100 rows per commit",
            f"{ceilings['postgres_batched']:,.0f} rows/s",
            "",
            "",
        ),
        ("Baseline: Flask, 2 sync workers, one insert per send", _rate(baseline), "", ""),
        ("anonchat", "", "", ""),
        (
            "  accepted sends through the gateway",
            _rate(accepted),
            f"{accepted['rate'] / two_hops:.2f}x two hops, "
            f"{accepted['rate'] / baseline['rate']:.2f}x baseline",
            ">= 0.6x, >= 2.5x",
        ),
        (
            f"  persisted, {persisted['window_seconds']:.0f} s at the maximum rate",
            f"{persisted['rate']:,.0f} msgs/s; queued "
            f"{persisted['depth_start']['messages']:,} -> {persisted['depth_end']['messages']:,}",
            f"{persisted['rate'] / accepted['rate']:.2f}x accepted",
            "keeps up, queue flat",
        ),
        (
            f"  worker capacity, 2 workers draining {capacity['messages']:,} msgs "
            f"in {capacity['jobs']:,} jobs",
            f"{capacity['rate']:,.0f} msgs/s",
            f"{capacity['rate'] / ceilings['postgres_batched']:.2f}x batched Postgres",
            ">= 0.3x",
        ),
        (
            f"  send-to-visible at {visible['rate']:,.0f} sends/s "
            f"({visible['rate'] / accepted['rate']:.2f}x max)",
            f"p50 {visible['p50_ms']:.1f} ms, p99 {visible['p99_ms']:.1f} ms",
            f"202 in p50 {visible['answered_p50_ms']:.1f} ms, "
            f"p99 {visible['answered_p99_ms']:.1f} ms",
            "p99 < 50 ms",
        ),
        (
            f"  get_messages, a {page['page']}-message page, {page['stored']:,} stored",
            f"p50 {page['p50_ms']:.1f} ms, p99 {page['p99_ms']:.1f} ms",
            f"{page['rate']:,.0f} pages/s",
            "p99 < 10 ms",
        ),
        (
            "  stored exactly once",
            f"{once['stored']:,} stored, {once['distinct']:,} distinct, "
            f"{once['answered']:,} answered 202",
            "",
            "stored = distinct >= answered",
        ),
        ("Peak RSS", "", "", f"each < {RSS_LIMIT_MB} MB"),
        *(
            (f"  {name}", f"{mb:.0f} MB", "", "")
            for name, mb in sorted(anonchat["peak_rss_mb"].items())
        ),
    ]
    headers = ("", "measured", "ratio", "target")
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(4)]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [headers, *rows]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _rate(load: dict[str, Any]) -> str:
    return f"{load['rate']:,.0f} req/s, p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms"
