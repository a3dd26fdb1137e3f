"""The text of the HTML report: values of a run's metrics formatted for reading, escaped, and
put into table cells, pass/fail marks and paragraphs (:mod:`jaxcomp.workflow.report`)."""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from numbers import Integral, Real

_MAX_LIST_ITEMS = 12


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------------------------------
# formatting


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _fmt_number(value) -> str:
    """A readable rendering of a number: integers as they are, floats with about 4 digits."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Integral):
        return str(int(value))
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == 0:
        return "0"
    magnitude = abs(x)
    if magnitude >= 1e6 or magnitude < 1e-3:
        return f"{x:.3e}"
    if magnitude >= 100:
        return f"{x:.1f}"
    return f"{x:.4g}"


def _fmt_fixed(value) -> str:
    """Three decimals (the precision the paper quotes), four below 0.1 (so that 0.0071 and the
    paper's 0.007 do not both read 0.007); tiny non-zero values in exponent form."""
    if not _is_number(value):
        return "—" if value is None else str(value)
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        return _fmt_number(x)
    if x != 0 and abs(x) < 5e-4:
        return f"{x:.2e}"
    return f"{x:.4f}" if abs(x) < 0.1 else f"{x:.3f}"


def _fmt_value(value) -> str:
    """Plain-text rendering of a metric value (not yet escaped)."""
    if value is None:
        return "—"
    if isinstance(value, bool) or _is_number(value):
        return _fmt_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        items = [
            _fmt_value(v)
            if not isinstance(v, (Mapping, list, tuple))
            else json.dumps(v, default=str)
            for v in value[:_MAX_LIST_ITEMS]
        ]
        more = f", … ({len(value)} items)" if len(value) > _MAX_LIST_ITEMS else ""
        return "[" + ", ".join(items) + more + "]"
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    return str(value)


def _fmt_seconds(seconds) -> str:
    if not _is_number(seconds) or not math.isfinite(float(seconds)):
        return "—"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    minutes, s = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _flatten(metrics: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            rows.extend(_flatten(value, name))
        else:
            rows.append((name, value))
    return rows


def _cell(value) -> str:
    text = _fmt_value(value)
    cls = ' class="num"' if (value is None or isinstance(value, bool) or _is_number(value)) else ""
    return f"<td{cls}>{_esc(text)}</td>"


def _mark(ok: bool | None, pass_text: str = "pass", fail_text: str = "fail") -> str:
    if ok is None:
        return '<span class="mark na">n/a</span>'
    if ok:
        return f'<span class="mark pass">✓ {_esc(pass_text)}</span>'
    return f'<span class="mark fail">✗ {_esc(fail_text)}</span>'


_BULLET = re.compile(r"^[-*•]\s+")


def _description_html(text) -> str:
    """Plain text with blank-line-separated paragraphs; a paragraph of '- ' lines becomes a list."""
    if not isinstance(text, str) or not text.strip():
        return ""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in paragraph.strip().splitlines() if line.strip()]
        if lines and all(_BULLET.match(line) for line in lines):
            items = "".join(f"<li>{_esc(_BULLET.sub('', line))}</li>" for line in lines)
            out.append(f"<ul>{items}</ul>")
        elif lines:
            out.append(f"<p>{_esc(' '.join(lines))}</p>")
    return "\n".join(out)
