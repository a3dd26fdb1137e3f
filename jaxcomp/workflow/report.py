"""The HTML report of a workflow run: one self-contained file, readable offline.

:func:`write_report` reads only the run directory the runner writes:

* ``RUN_DIR/run.json`` - ``name``, ``config_hash``, ``jaxcomp_version``, ``versions``,
  ``platform``, ``created``, ``updated``, ``stages`` (ordered names) and ``seed``;
* ``RUN_DIR/config.toml`` - the run's configuration, shown verbatim;
* ``RUN_DIR/<stage>/stage.json`` for each stage that has run (a stage without one is
  shown as "not run"): ``title``, ``description``, ``status``, ``started``, ``seconds``,
  ``seed``, ``fingerprint``, ``config``, ``metrics``, ``figures``, ``tables`` and ``notes``.

The page has a run summary, a table of contents and one section per stage in run order.
Metrics are flattened into a two-column table, except for two structures that get tables
of their own wherever they appear:

* ``percentiles`` together with ``paper`` (and optionally ``ece``): ours next to the
  paper's value, passing where ours <= paper, and ECE passing below :data:`ECE_THRESHOLD`;
* ``recovery`` (``{param: {truth, low95, high95, median}}``): whether each true value lies
  inside its 95% interval.

Figures (PNG, SVG, JPEG, GIF, WebP) are embedded as base64 data URIs and tables (anything
:func:`jaxcomp._io.read_table` reads) are rendered as HTML, so the file needs nothing
else: no external resources and no JavaScript.  A missing figure or table file gives a
visible "missing file: ..." warning (``strict=True`` raises :class:`FileNotFoundError`
instead).  All text from the run directory is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Mapping
from numbers import Integral, Real
from pathlib import Path

__all__ = ["write_report", "render_report", "ECE_THRESHOLD", "REPORT_NAME"]

#: An expected calibration error below this passes.
ECE_THRESHOLD = 0.02
#: File name of the report inside the run directory (the default output).
REPORT_NAME = "report.html"

_IMAGE_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
_DEFAULT_MAX_ROWS = 30
_MAX_LIST_ITEMS = 12

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg-alt: #f6f8fa; --accent: #0b5cad; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif;
       color: var(--fg); background: #fff; line-height: 1.5; margin: 0; padding: 0 1.5rem 3rem; }
main { max-width: 1100px; margin: 0 auto; }
h1 { font-size: 1.8rem; margin: 1.5rem 0 0.25rem; }
h2 { font-size: 1.4rem; border-bottom: 1px solid var(--line); padding-bottom: 0.3rem;
     margin-top: 2.5rem; }
h3 { font-size: 1.1rem; margin: 1.5rem 0 0.5rem; }
a { color: var(--accent); }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
            font-size: 0.88em; }
pre { background: var(--bg-alt); border: 1px solid var(--line); border-radius: 6px; padding: 0.8rem;
      overflow-x: auto; white-space: pre; }
.subtitle { color: var(--muted); margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.92rem; }
th, td { border: 1px solid var(--line); padding: 0.25rem 0.6rem; text-align: left;
         vertical-align: top; }
th { background: var(--bg-alt); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 16rem; }
.table-wrap { overflow-x: auto; max-width: 100%; }
.caption { color: var(--muted); font-size: 0.92rem; margin: 0.2rem 0 0.4rem; }
.rows-note { color: var(--muted); font-size: 0.85rem; margin-top: -0.6rem; }
figure { margin: 1rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px;
             background: #fff; }
figcaption { color: var(--muted); font-size: 0.92rem; margin-top: 0.3rem; }
.badge { display: inline-block; padding: 0 0.55rem; border-radius: 1rem; font-size: 0.85rem;
         font-weight: 600;
         border: 1px solid transparent; }
.status-done { background: #dafbe1; color: #116329; border-color: #aceebb; }
.status-failed, .status-unreadable { background: #ffebe9; color: #a40e26; border-color: #ffcecb; }
.status-not-run, .status-other { background: var(--bg-alt); color: var(--muted);
                                 border-color: var(--line); }
.meta { color: var(--muted); font-size: 0.92rem; }
.meta span { margin-right: 1.2rem; }
.note { background: #fff8c5; border: 1px solid #eed888; border-left: 4px solid #d4a72c;
        border-radius: 4px;
        padding: 0.5rem 0.8rem; margin: 0.5rem 0; }
.problem { background: #ffebe9; border: 1px solid #ffcecb; border-left: 4px solid #cf222e;
           border-radius: 4px;
           padding: 0.5rem 0.8rem; margin: 0.5rem 0; color: #82071e; font-weight: 600; }
.mark { font-weight: 600; white-space: nowrap; }
.mark.pass { color: #116329; }
.mark.fail { color: #a40e26; }
.mark.na { color: var(--muted); font-weight: normal; }
nav ol { padding-left: 1.5rem; }
nav li { margin: 0.15rem 0; }
details { margin: 0.6rem 0; }
summary { cursor: pointer; font-weight: 600; }
footer { margin-top: 3rem; color: var(--muted); font-size: 0.85rem;
         border-top: 1px solid var(--line);
         padding-top: 0.6rem; }
"""


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


# ---------------------------------------------------------------------------------------
# the special metric tables


def _as_groups(mapping: Mapping) -> dict[str, Mapping]:
    """``{kind: {p50: ...}}`` as is; a flat ``{p50: ...}`` as one unnamed group."""
    if mapping and all(isinstance(v, Mapping) for v in mapping.values()):
        return {str(k): v for k, v in mapping.items()}
    return {"": mapping}


def _comparison_table(metrics: Mapping) -> tuple[str, set[str]]:
    """Percentiles next to the paper's, and ECE; returns the HTML and the metric keys used."""
    ours, paper = metrics.get("percentiles"), metrics.get("paper")
    if not (isinstance(ours, Mapping) and isinstance(paper, Mapping)):
        return "", set()
    used = {"percentiles", "paper"}
    ours_g, paper_g = _as_groups(ours), _as_groups(paper)
    ece = metrics.get("ece")
    if isinstance(ece, Mapping) and all(_is_number(v) or v is None for v in ece.values()):
        ece_g = {str(k): v for k, v in ece.items()}
        used.add("ece")
    elif _is_number(ece):
        ece_g = {next(iter(paper_g)) if len(paper_g) == 1 else "all": ece}
        used.add("ece")
    else:
        ece_g = {}
    kinds = (
        list(paper_g)
        + [k for k in ours_g if k not in paper_g]
        + [k for k in ece_g if k not in paper_g and k not in ours_g]
    )
    rows, n_pass, n_checked = [], 0, 0
    for kind in kinds:
        mine, theirs = ours_g.get(kind, {}), paper_g.get(kind, {})
        mine = mine if isinstance(mine, Mapping) else {}
        theirs = theirs if isinstance(theirs, Mapping) else {}
        for name in list(theirs) + [k for k in mine if k not in theirs]:
            a, b = mine.get(name), theirs.get(name)
            ok = None
            if (
                _is_number(a)
                and _is_number(b)
                and math.isfinite(float(a))
                and math.isfinite(float(b))
            ):
                ok = float(a) <= float(b)
            elif _is_number(b) and _is_number(a):  # NaN / inf of ours: a failure
                ok = False
            if ok is not None:
                n_checked += 1
                n_pass += ok
            rows.append(
                f"<tr><td>{_esc(kind or '—')}</td><td>{_esc(name)}</td>"
                f'<td class="num">{_esc(_fmt_fixed(a))}</td><td '
                f'class="num">{_esc(_fmt_fixed(b))}</td>'
                f"<td>{_mark(ok)}</td></tr>"
            )
        if kind in ece_g:
            value = ece_g[kind]
            ok = (
                float(value) < ECE_THRESHOLD
                if _is_number(value) and math.isfinite(float(value))
                else (False if _is_number(value) else None)
            )
            if ok is not None:
                n_checked += 1
                n_pass += ok
            rows.append(
                f"<tr><td>{_esc(kind or '—')}</td><td>ECE</td>"
                f'<td class="num">{_esc(_fmt_fixed(value))}</td>'
                '<td class="num">&lt; '
                f"{_esc(_fmt_fixed(ECE_THRESHOLD))}</td><td>{_mark(ok)}</td></tr>"
            )
    if not rows:
        return "", set()
    head = "<tr><th>Inputs</th><th>Quantity</th><th>Ours</th><th>Paper</th><th>Check</th></tr>"
    caption = (
        f"Comparison with the paper: {n_pass} of {n_checked} checks pass (a percentile passes "
        "where ours "
        "&le; the paper's; the expected calibration error passes below "
        f"{_esc(_fmt_fixed(ECE_THRESHOLD))})."
    )
    html_text = (
        f'<h3>Comparison with the paper</h3>\n<p class="caption">{caption}</p>\n'
        f'<div class="table-wrap"><table class="comparison">{head}{"".join(rows)}</table></div>'
    )
    return html_text, used


_RECOVERY_FIELDS = ("truth", "median", "low95", "high95")


def _recovery_table(metrics: Mapping) -> tuple[str, set[str]]:
    recovery = metrics.get("recovery")
    if not (
        isinstance(recovery, Mapping)
        and recovery
        and all(isinstance(v, Mapping) for v in recovery.values())
    ):
        return "", set()
    rows, n_inside, n_checked = [], 0, 0
    for param, entry in recovery.items():
        truth, low, high = entry.get("truth"), entry.get("low95"), entry.get("high95")
        ok = None
        if all(_is_number(v) for v in (truth, low, high)):
            ok = float(low) <= float(truth) <= float(high)
            n_checked += 1
            n_inside += ok
        cells = "".join(
            f'<td class="num">{_esc(_fmt_value(entry.get(f)))}</td>' for f in _RECOVERY_FIELDS
        )
        rows.append(
            f"<tr><td>{_esc(param)}</td>{cells}<td>{_mark(ok, 'inside', 'outside')}</td></tr>"
        )
    head = (
        "<tr><th>Parameter</th><th>Truth</th><th>Median</th><th>95% low</th><th>95% high</th>"
        "<th>Truth inside the 95% interval</th></tr>"
    )
    caption = (
        f"Parameter recovery: {n_inside} of {n_checked} true values lie inside their 95% intervals."
    )
    html_text = (
        f'<h3>Parameter recovery</h3>\n<p class="caption">{_esc(caption)}</p>\n'
        f'<div class="table-wrap"><table class="recovery">{head}{"".join(rows)}</table></div>'
    )
    return html_text, {"recovery"}


# ---------------------------------------------------------------------------------------
# the report


class _Problems:
    """Files the report could not show: missing, or present but unusable."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.missing: list[str] = []
        self.unreadable: list[str] = []

    def rel(self, path: Path) -> str:
        try:
            return Path(os.path.relpath(path, self.run_dir)).as_posix()
        except ValueError:
            return str(path)

    def missing_file(self, path: Path) -> str:
        name = self.rel(path)
        self.missing.append(name)
        return f'<div class="problem">⚠ missing file: {_esc(name)}</div>'

    def bad_file(self, path: Path | str, reason: str) -> str:
        name = self.rel(path) if isinstance(path, Path) else path
        self.unreadable.append(f"{name} ({reason})")
        return f'<div class="problem">⚠ {_esc(reason)}: {_esc(name)}</div>'


def _inside(run_dir: Path, stage_dir: Path, relative) -> Path | None:
    """The file ``relative`` names inside the stage directory; None if it leaves the run
    directory."""
    if not isinstance(relative, str) or not relative or Path(relative).is_absolute():
        return None
    full = Path(os.path.normpath(os.path.join(os.path.abspath(stage_dir), relative)))
    root = Path(os.path.normpath(os.path.abspath(run_dir)))
    return full if full == root or root in full.parents else None


def _bad_path_reason(kind: str, entry: Mapping) -> str:
    relative = entry.get("path")
    if not isinstance(relative, str) or not relative:
        return f"{kind} entry without a path"
    return f"{kind} path outside the run directory"


def _figure_html(entry, run_dir: Path, stage_dir: Path, problems: _Problems) -> str:
    entry = entry if isinstance(entry, Mapping) else {"path": entry}
    caption = entry.get("caption") or ""
    path = _inside(run_dir, stage_dir, entry.get("path"))
    if path is None:
        where = f"{stage_dir.name}/{entry.get('path') or '(no path)'}"
        return problems.bad_file(where, _bad_path_reason("figure", entry))
    mime = _IMAGE_TYPES.get(path.suffix.lower())
    if not path.is_file():
        return problems.missing_file(path)
    if mime is None:
        return problems.bad_file(path, f"unsupported figure format {path.suffix or '(none)'}")
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption_html = f"<figcaption>{_esc(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{_esc(caption or path.name)}">'
        f"{caption_html}</figure>"
    )


def _table_cell(value) -> str:
    import numpy as np

    if np.ma.is_masked(value):
        return '<td class="num">—</td>'
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            value = value.item()
        else:
            flat = value.ravel()
            text = ", ".join(_fmt_value(v.item()) for v in flat[:6]) + (
                ", …" if flat.size > 6 else ""
            )
            return f"<td>[{_esc(text)}]</td>"
    if isinstance(value, np.generic):
        value = value.item()
    return _cell(value)


def _table_html(entry, run_dir: Path, stage_dir: Path, problems: _Problems) -> str:
    from .._io import read_table

    entry = entry if isinstance(entry, Mapping) else {"path": entry}
    caption = entry.get("caption") or ""
    max_rows = entry.get("max_rows", _DEFAULT_MAX_ROWS)
    if not isinstance(max_rows, Integral) or isinstance(max_rows, bool) or max_rows < 0:
        max_rows = _DEFAULT_MAX_ROWS
    path = _inside(run_dir, stage_dir, entry.get("path"))
    if path is None:
        where = f"{stage_dir.name}/{entry.get('path') or '(no path)'}"
        return problems.bad_file(where, _bad_path_reason("table", entry))
    if not path.is_file():
        return problems.missing_file(path)
    try:
        table = read_table(path)
    except (ValueError, OSError) as error:
        return problems.bad_file(path, f"unreadable table ({error})")
    n_rows = len(table)
    shown = min(n_rows, int(max_rows))
    header = []
    for column in table.columns.values():
        unit = f" [{column.unit}]" if getattr(column, "unit", None) not in (None, "") else ""
        header.append(f"<th>{_esc(column.name + unit)}</th>")
    columns = [table[name][:shown] for name in table.colnames]
    body = []
    for i in range(shown):
        body.append("<tr>" + "".join(_table_cell(column[i]) for column in columns) + "</tr>")
    if n_rows > shown:
        rows_note = f"First {shown} of {n_rows} rows ({len(table.colnames)} columns)."
    else:
        rows_note = f"All {n_rows} rows ({len(table.colnames)} columns)."
    caption_html = f'<p class="caption">{_esc(caption)}</p>' if caption else ""
    return (
        f'{caption_html}<div class="table-wrap"><table class="data"><tr>{"".join(header)}</tr>'
        f'{"".join(body)}</table></div>\n<p class="rows-note">{_esc(rows_note)} '
        f"File: <code>{_esc(problems.rel(path))}</code></p>"
    )


def _status_badge(status: str) -> str:
    cls = {
        "done": "status-done",
        "failed": "status-failed",
        "not run": "status-not-run",
        "unreadable": "status-unreadable",
    }.get(status, "status-other")
    return f'<span class="badge {cls}">{_esc(status)}</span>'


def _anchor(index: int, name: str) -> str:
    return f"stage-{index}-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "unnamed")


def _read_stage(run_dir: Path, name: str, problems: _Problems) -> tuple[dict | None, str]:
    """The stage.json (None if the stage has not run) and any warning HTML."""
    path = run_dir / name / "stage.json"
    if _inside(run_dir, run_dir, f"{name}/stage.json") is None:
        return None, problems.bad_file(name, "stage name leaves the run directory")
    if not path.is_file():
        return None, ""
    try:
        stage = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return {"status": "unreadable"}, problems.bad_file(path, f"unreadable stage.json ({error})")
    if not isinstance(stage, dict):
        return {"status": "unreadable"}, problems.bad_file(path, "stage.json is not a JSON object")
    return stage, ""


def _stage_section(
    index: int, name: str, stage: dict | None, warning: str, run_dir: Path, problems: _Problems
) -> str:
    anchor = _anchor(index, name)
    if stage is None:
        return (
            f'<section class="stage" id="{_esc(anchor)}">\n<h2>{index}. {_esc(name)}</h2>\n'
            f'<p class="meta"><span>{_status_badge("not run")}</span><span>stage '
            f"<code>{_esc(name)}</code>"
            f"</span></p>\n{warning}<p>This stage has not run yet.</p>\n</section>"
        )
    stage_dir = run_dir / name
    title = stage.get("title") or name
    status = str(stage.get("status") or "unknown")
    parts = [f'<section class="stage" id="{_esc(anchor)}">', f"<h2>{index}. {_esc(title)}</h2>"]
    meta = [
        f"<span>{_status_badge(status)}</span>",
        f"<span>stage <code>{_esc(name)}</code></span>",
    ]
    if "seconds" in stage:
        meta.append(f"<span>time {_esc(_fmt_seconds(stage.get('seconds')))}</span>")
    if "started" in stage:
        meta.append(f"<span>started {_esc(stage.get('started'))}</span>")
    if "seed" in stage:
        seed = stage.get("seed")
        meta.append(f"<span>seed {_esc('—' if seed is None else seed)}</span>")
    if stage.get("fingerprint"):
        meta.append(f"<span>fingerprint <code>{_esc(stage['fingerprint'])}</code></span>")
    parts.append(f'<p class="meta">{"".join(meta)}</p>')
    parts.append(warning)
    if stage.get("stage") not in (None, name):
        parts.append(
            f'<div class="note">⚠ stage.json names stage {_esc(stage["stage"])}, '
            f"not {_esc(name)}.</div>"
        )
    parts.append(_description_html(stage.get("description")))
    if stage.get("error"):
        parts.append(f"<h3>Error</h3><pre>{_esc(stage['error'])}</pre>")
    notes = stage.get("notes") or []
    notes = [notes] if isinstance(notes, str) else notes
    for note in notes:
        parts.append(f'<div class="note">⚠ {_esc(note)}</div>')

    metrics = stage.get("metrics")
    if isinstance(metrics, Mapping) and metrics:
        comparison, used_c = _comparison_table(metrics)
        recovery, used_r = _recovery_table(metrics)
        parts.extend(p for p in (comparison, recovery) if p)
        rest = {k: v for k, v in metrics.items() if k not in used_c | used_r}
        if rest:
            rows = "".join(
                f"<tr><td>{_esc(key)}</td>{_cell(value)}</tr>" for key, value in _flatten(rest)
            )
            parts.append(
                f'<h3>Metrics</h3>\n<div class="table-wrap"><table class="metrics">'
                f"<tr><th>Metric</th><th>Value</th></tr>{rows}</table></div>"
            )

    figures = stage.get("figures") or []
    if figures:
        parts.append("<h3>Figures</h3>")
        parts.extend(_figure_html(entry, run_dir, stage_dir, problems) for entry in figures)
    tables = stage.get("tables") or []
    if tables:
        parts.append("<h3>Tables</h3>")
        parts.extend(_table_html(entry, run_dir, stage_dir, problems) for entry in tables)
    config = stage.get("config")
    if config:
        parts.append(
            f"<details><summary>Stage configuration</summary><pre>"
            f"{_esc(json.dumps(config, indent=2, default=str))}</pre></details>"
        )
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def render_report(run_dir: str | os.PathLike) -> tuple[str, list[str], list[str]]:
    """The report's HTML, the missing files and the unusable files (paths relative to
    ``run_dir``)."""
    run_dir = Path(run_dir)
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise FileNotFoundError(f"{run_json} not found: not a jaxcomp run directory")
    try:
        run = json.loads(run_json.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"could not read {run_json}: {error}") from error
    stages = run.get("stages") if isinstance(run, dict) else None
    if not isinstance(stages, list) or not all(isinstance(s, str) for s in stages):
        raise ValueError(f"{run_json} has no list of stage names under 'stages'")
    problems = _Problems(run_dir)
    name = run.get("name") or run_dir.name

    loaded = [(s, *_read_stage(run_dir, s, problems)) for s in stages]
    total = sum(
        float(st["seconds"])
        for _, st, _ in loaded
        if st is not None and _is_number(st.get("seconds")) and math.isfinite(float(st["seconds"]))
    )
    counts: dict[str, int] = {}
    for _, st, _ in loaded:
        status = "not run" if st is None else str(st.get("status") or "unknown")
        counts[status] = counts.get(status, 0) + 1

    summary = [
        ("Run", name),
        ("jaxcomp", run.get("jaxcomp_version", "—")),
        ("Configuration hash", run.get("config_hash", "—")),
        ("Seed", run.get("seed", "—")),
        ("Created", run.get("created", "—")),
        ("Updated", run.get("updated", "—")),
        ("Total stage time", _fmt_seconds(total)),
        ("Stages", ", ".join(f"{n} {s}" for s, n in counts.items()) or "none"),
        ("Platform", run.get("platform", "—")),
    ]
    summary_rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in summary)
    versions = run.get("versions") or {}
    versions_html = ""
    if isinstance(versions, Mapping) and versions:
        rows = "".join(
            f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in versions.items()
        )
        versions_html = (
            f"<details><summary>Package versions ({len(versions)})</summary><table>"
            f"<tr><th>Package</th><th>Version</th></tr>{rows}</table></details>"
        )
    config_path = run_dir / "config.toml"
    if config_path.is_file():
        config_html = (
            f"<details><summary>Configuration (config.toml)</summary>"
            f"<pre>{_esc(config_path.read_text(encoding='utf-8', errors='replace'))}</pre>"
            "</details>"
        )
    else:
        config_html = problems.missing_file(config_path)

    sections, toc = [], []
    for index, (stage_name, stage, warning) in enumerate(loaded, start=1):
        sections.append(_stage_section(index, stage_name, stage, warning, run_dir, problems))
        status = "not run" if stage is None else str(stage.get("status") or "unknown")
        title = stage_name if stage is None else (stage.get("title") or stage_name)
        time_text = (
            ""
            if stage is None or "seconds" not in stage
            else f", {_fmt_seconds(stage.get('seconds'))}"
        )
        toc.append(
            f'<li><a href="#{_esc(_anchor(index, stage_name))}">{_esc(title)}</a> '
            f'<span class="meta">({_esc(status)}{_esc(time_text)})</span></li>'
        )

    problem_html = ""
    if problems.missing or problems.unreadable:
        listed = "".join(f"<li>missing file: {_esc(p)}</li>" for p in problems.missing)
        listed += "".join(f"<li>{_esc(p)}</li>" for p in problems.unreadable)
        problem_html = (
            f'<div class="problem">⚠ This report is incomplete: '
            f"{len(problems.missing) + len(problems.unreadable)} file(s) could not be shown."
            f"<ul>{listed}</ul></div>"
        )
    from .._version import __version__

    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jaxcomp run: {_esc(name)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<header>
<h1>jaxcomp run: {_esc(name)}</h1>
<p class="subtitle">{len(stages)} stage(s); updated {_esc(run.get("updated", "—"))}</p>
</header>
{problem_html}
<section id="summary">
<h2>Run summary</h2>
<table class="kv">{summary_rows}</table>
{versions_html}
{config_html}
</section>
<nav id="contents">
<h2>Contents</h2>
<ol>{"".join(toc)}</ol>
</nav>
{chr(10).join(sections)}
<footer>Written by jaxcomp {_esc(__version__)} (<code>jaxcomp report</code>) from the run directory
<code>{_esc(run_dir.name)}</code>.</footer>
</main>
</body>
</html>
"""
    return page, problems.missing, problems.unreadable


def write_report(
    run_dir: str | os.PathLike, path: str | os.PathLike | None = None, *, strict: bool = False
) -> Path:
    """Write the run's self-contained HTML report; returns its path.

    ``path`` defaults to ``RUN_DIR/report.html``; the file is written atomically.  Missing
    figure, table or configuration files are shown as warnings in the page; with
    ``strict=True`` they raise :class:`FileNotFoundError` (and other files that cannot be
    shown raise :class:`ValueError`) and nothing is written.
    """
    from .._io import atomic_write_text

    run_dir = Path(run_dir)
    page, missing, unreadable = render_report(run_dir)
    if strict and missing:
        extra = f"; also unusable: {', '.join(unreadable)}" if unreadable else ""
        raise FileNotFoundError(
            f"report of {run_dir}: missing file(s): {', '.join(missing)}{extra}"
        )
    if strict and unreadable:
        raise ValueError(
            f"report of {run_dir}: file(s) that cannot be shown: {', '.join(unreadable)}"
        )
    out = Path(path) if path is not None else run_dir / REPORT_NAME
    return atomic_write_text(out, page)
