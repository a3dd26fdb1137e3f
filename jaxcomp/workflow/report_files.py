"""The run's files in the report: figures embedded as data URIs and tables rendered as HTML,
only from inside the run directory, and the files that could not be shown (:class:`_Problems`)."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from numbers import Integral
from pathlib import Path

from .report_format import _cell, _esc, _fmt_value

_IMAGE_TYPES = {
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
_DEFAULT_MAX_ROWS = 30


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
