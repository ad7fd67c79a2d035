"""What a shop reads from its search log (`searchkit report`, the server's /admin page): searches per day, top queries,
queries with no result or no match, queries shoppers rarely click, and clicks by position."""

from __future__ import annotations

from collections import Counter, defaultdict
from html import escape
from pathlib import Path
from typing import Any

from ..data.logs import read_records

LOW_CTR_MIN_SEARCHES = 5  # a query is judged on its click-through rate once searched this often
TOP = 20


def summarize(folders: list[str | Path], top: int = TOP) -> dict[str, Any]:
    """The log folders' searches and events, as a shop reads them."""
    searches = [s for f in folders for s in read_records(f, "searches")]
    events = [e for f in folders for e in read_records(f, "events")]
    per_day = Counter(s["time"][:10] for s in searches)
    queries = Counter(s.get("searched_as") or s["query"] for s in searches)
    empty = Counter(s.get("searched_as") or s["query"] for s in searches if not s.get("shown") or s.get("no_match"))
    clicked_ids = {e["query_id"] for e in events if e.get("type") == "click"}
    by_query: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in searches:
        tally = by_query[s.get("searched_as") or s["query"]]
        tally[0] += 1
        tally[1] += s["query_id"] in clicked_ids
    low = sorted(((q, n, c / n) for q, (n, c) in by_query.items() if n >= LOW_CTR_MIN_SEARCHES),
                 key=lambda t: (t[2], -t[1], t[0]))[:top]
    positions = Counter(int(e["position"]) for e in events if e.get("type") == "click" and e.get("position"))
    kinds = Counter(e.get("type") for e in events)
    return {
        "searches": len(searches), "events": dict(sorted(kinds.items())),
        "click_through_rate": round(len(clicked_ids & {s["query_id"] for s in searches}) / len(searches), 4)
        if searches else 0.0,
        "searches_per_day": dict(sorted(per_day.items())),
        "top_queries": [{"query": q, "searches": n} for q, n in queries.most_common(top)],
        "no_result_queries": [{"query": q, "searches": n} for q, n in empty.most_common(top)],
        "low_click_queries": [{"query": q, "searches": n, "click_through_rate": round(r, 4)} for q, n, r in low],
        "clicks_by_position": {str(p): positions[p] for p in sorted(positions)},
    }


def as_text(summary: dict[str, Any]) -> str:
    lines = [f"{summary['searches']} searches, click-through {summary['click_through_rate']:.1%}, events "
             + (", ".join(f"{k} {v}" for k, v in summary["events"].items()) or "none")]
    lines.append("searches per day: " + (", ".join(f"{d} {n}" for d, n in summary["searches_per_day"].items()) or "-"))
    for title, key, field in (("top queries", "top_queries", "searches"),
                              ("queries with no result or no match", "no_result_queries", "searches"),
                              ("queries rarely clicked", "low_click_queries", "click_through_rate")):
        rows = summary[key]
        lines.append(f"{title}: " + ("; ".join(f"{r['query']} ({r[field]:.0%})" if field == "click_through_rate"
                                               else f"{r['query']} ({r[field]})" for r in rows) or "-"))
    lines.append("clicks by position: " + (", ".join(f"#{p} {n}" for p, n in summary["clicks_by_position"].items())
                                            or "-"))
    return "\n".join(lines)


def _bars(title: str, values: dict[str, int], element: str) -> str:
    """An inline SVG bar chart (no external assets)."""
    if not values:
        return f'<h2>{escape(title)}</h2><p class="none">nothing logged yet</p>'
    width, height, gap = 640, 170, 4
    top = max(values.values()) or 1
    step = width / len(values)
    bars = []
    for i, (label, n) in enumerate(values.items()):
        h = max(1.0, (height - 20) * n / top)
        x = i * step
        bars.append(f'<rect x="{x + gap / 2:.1f}" y="{height - 20 - h:.1f}" width="{max(1.0, step - gap):.1f}" '
                    f'height="{h:.1f}"><title>{escape(str(label))}: {n}</title></rect>')
        if len(values) <= 31:
            bars.append(f'<text x="{x + step / 2:.1f}" y="{height - 5}" text-anchor="middle">'
                        f'{escape(str(label)[-5:])}</text>')
            bars.append(f'<text class="n" x="{x + step / 2:.1f}" y="{max(10.0, height - 24 - h):.1f}" '
                        f'text-anchor="middle">{n}</text>')
    return (f'<h2>{escape(title)}</h2><svg id="{element}" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(title)}">{"".join(bars)}</svg>')


def _table(title: str, rows: list[dict[str, Any]], element: str) -> str:
    if not rows:
        return f'<h2>{escape(title)}</h2><p class="none">none</p>'
    keys = list(rows[0])
    head = "".join(f"<th>{escape(k.replace('_', ' '))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(r[k]))}</td>" for k in keys) + "</tr>" for r in rows)
    return f'<h2>{escape(title)}</h2><table id="{element}"><tr>{head}</tr>{body}</table>'


def admin_page(summary: dict[str, Any]) -> str:
    """The /admin page: one self-contained HTML document."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>searchkit: searches</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#222}}
svg rect{{fill:#1f6feb}} svg text{{font-size:10px;fill:#555}} svg text.n{{fill:#222;font-weight:600}} table{{border-collapse:collapse}}
td,th{{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}} .none{{color:#777}}</style></head><body>
<h1>Searches</h1>
<p id="totals">{summary['searches']} searches · click-through {summary['click_through_rate']:.1%} · events:
{escape(", ".join(f"{k} {v}" for k, v in summary['events'].items()) or "none")}</p>
{_bars("Searches per day", summary["searches_per_day"], "per-day")}
{_bars("Clicks by position", summary["clicks_by_position"], "by-position")}
{_table("Top queries", summary["top_queries"], "top-queries")}
{_table("Queries with no result or no match", summary["no_result_queries"], "no-result")}
{_table("Queries shoppers rarely click", summary["low_click_queries"], "low-click")}
</body></html>"""
