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

This module assembles the page (style, run summary, contents, one section per stage); the
formatting of values is :mod:`~jaxcomp.workflow.report_format`, the checked tables
:mod:`~jaxcomp.workflow.report_tables` and the figure and table files
:mod:`~jaxcomp.workflow.report_files`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from .report_files import _figure_html, _inside, _Problems, _table_html
from .report_format import _cell, _description_html, _esc, _flatten, _fmt_seconds, _is_number
from .report_tables import ECE_THRESHOLD, _comparison_table, _recovery_table

__all__ = ["write_report", "render_report", "ECE_THRESHOLD", "REPORT_NAME"]

#: File name of the report inside the run directory (the default output).
REPORT_NAME = "report.html"


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
