"""How a query shows itself: a text table in repr, an HTML table in notebooks."""

from __future__ import annotations

import html

from . import settings


def _rows(expr):
    limit = settings.config.get("display_limit", 12)
    rows = expr.to_dicts(limit=limit)
    return rows, len(expr)


def _cell(v) -> str:
    if isinstance(v, (bytes, bytearray)) or hasattr(v, "shape"):
        return "=BLOB="
    s = str(v)
    return s if len(s) <= 24 else s[:21] + "..."


def text_preview(expr) -> str:
    names = expr.heading.names
    rows, total = _rows(expr)
    pk = set(expr.primary_key)
    header = ["*" + n if n in pk else n for n in names]
    cells = [[_cell(r[n]) for n in names] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    if total > len(rows):
        lines.append(" ...")
    lines.append(f" ({total} rows)")
    return "\n".join(lines)


def html_preview(expr) -> str:
    names = expr.heading.names
    rows, total = _rows(expr)
    pk = set(expr.primary_key)
    head = "".join(f"<th>{'<b>' + html.escape(n) + '</b>' if n in pk else html.escape(n)}</th>" for n in names)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r[n]))}</td>" for n in names) + "</tr>" for r in rows)
    more = "<p>...</p>" if total > len(rows) else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}<p>Total: {total}</p>"
