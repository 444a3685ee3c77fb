"""How a query shows itself: a text table in repr, an HTML table in notebooks."""

from __future__ import annotations

import html

from . import settings


def _rows(expr, limit: int | None = None):
    """Up to ``limit`` rows (default ``display_limit``), and whether there are more."""
    if limit is None:
        limit = settings.config.get("display_limit", 12)
    rows = expr.to_dicts(limit=limit + 1)
    return rows[:limit], len(rows) > limit


def _cell(v, width: int = 24) -> str:
    if isinstance(v, (bytes, bytearray)) or hasattr(v, "shape"):
        return "=BLOB="
    s = str(v)
    return s if len(s) <= width else s[:width - 3] + "..."


def text_preview(expr, limit: int | None = None, width: int | None = None) -> str:
    """The first rows as a text table: a header (``*`` marks the primary key), a rule,
    one line per row, ``...`` when rows were left out, then the total count."""
    names = expr.heading.names
    rows, more = _rows(expr, limit)
    pk = set(expr.primary_key)
    header = ["*" + n if n in pk else n for n in names]
    cells = [[_cell(r[n], width or 24) for n in names] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
             "  ".join("+" + "-" * max(w - 2, 0) + "+" for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    if more:
        lines.append("   ...")
    lines.append(f" (Total: {len(expr)})")
    return "\n".join(lines) + "\n"


_STYLE = ("<style>.dj-preview table{border-collapse:collapse}.dj-preview th,.dj-preview td{padding:2px 8px;"
          "border-bottom:1px solid #ddd;text-align:left}.dj-preview th b{color:#0a4f8a}</style>")


def html_preview(expr) -> str:
    """The first rows as an HTML table for notebooks (primary-key names in bold), after a
    small style block, with the total count."""
    names = expr.heading.names
    rows, more = _rows(expr)
    total = len(expr)
    pk = set(expr.primary_key)
    head = "".join(f"<th>{'<b>' + html.escape(n) + '</b>' if n in pk else html.escape(n)}</th>" for n in names)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r[n]))}</td>" for n in names) + "</tr>" for r in rows)
    more = "<p>...</p>" if more else ""
    return (f"{_STYLE}<div class=\"dj-preview\"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"{more}<p>Total: {total}</p></div>")
