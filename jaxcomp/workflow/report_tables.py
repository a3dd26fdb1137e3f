"""The report's checked metric tables: percentiles next to the paper's and the expected
calibration error against :data:`ECE_THRESHOLD` (:func:`_comparison_table`), and parameter
recovery against the truth (:func:`_recovery_table`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .report_format import _esc, _fmt_fixed, _fmt_value, _is_number, _mark

__all__ = ["ECE_THRESHOLD"]

#: An expected calibration error below this passes.
ECE_THRESHOLD = 0.02


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
