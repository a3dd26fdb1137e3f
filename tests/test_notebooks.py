"""The tutorials in notebooks/ run top to bottom as scripts (quick mode) and are valid jupytext
notebooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = (
    "01_quickstart_selection_function.py",
    "02_ast_pipeline_mock_field.py",
    "03_training_and_validation.py",
    "04_correcting_ngc628.py",
    "05_nuts_fit_and_sensitivity.py",
    "06_many_fields.py",
)
NEEDS_C4 = {"04_correcting_ngc628.py"}
TIMEOUT_S = 300


def _tail(text, lines: int = 60) -> str:
    if isinstance(text, bytes):  # TimeoutExpired carries bytes even with text=True
        text = text.decode(errors="replace")
    return "\n".join((text or "").splitlines()[-lines:])


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_a_jupytext_percent_file(name):
    text = (NOTEBOOK_DIR / name).read_text(encoding="utf-8")
    header = re.match(r"# ---\n(# .*\n)+?# ---\n", text)
    assert header, f"{name} does not start with a jupytext YAML header"
    assert "format_name: percent" in header.group(0) and "jupytext:" in header.group(0)
    assert len(re.findall(r"^# %% \[markdown\]", text, flags=re.M)) >= 3, (
        f"{name} has fewer than 3 markdown cells"
    )
    assert len(re.findall(r"^# %%$", text, flags=re.M)) >= 3, f"{name} has fewer than 3 code cells"
    assert 'QUICK = os.environ.get("JAXCOMP_NOTEBOOK_QUICK") == "1"' in text
    compile(text, name, "exec")  # a valid Python script


@pytest.mark.timeout(TIMEOUT_S + 60)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_quick_mode(name, tmp_path, request):
    # PYTHONDONTWRITEBYTECODE: notebook 4 imports a script from inference/; keep the repository
    # untouched
    env = dict(
        os.environ,
        JAXCOMP_NOTEBOOK_QUICK="1",
        MPLBACKEND="Agg",
        JAXCOMP_REPO=str(REPO_ROOT),
        PYTHONDONTWRITEBYTECODE="1",
    )
    if name in NEEDS_C4:
        env["JAXCOMP_C4_DIR"] = str(request.getfixturevalue("c4_checkpoint_dir"))
    before = sorted(p.name for p in NOTEBOOK_DIR.iterdir())
    try:
        proc = subprocess.run(
            [sys.executable, str(NOTEBOOK_DIR / name)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"{name} did not finish in {TIMEOUT_S} s\n--- stderr ---\n{_tail(error.stderr)}"
        )
    assert proc.returncode == 0, (
        f"{name} exited with {proc.returncode}\n--- stdout ---\n{_tail(proc.stdout)}"
        f"\n--- stderr ---\n{_tail(proc.stderr)}"
    )
    figures = sorted(p.name for p in tmp_path.rglob("*.png"))
    assert figures, f"{name} wrote no PNG figure into its working directory"
    assert sorted(p.name for p in NOTEBOOK_DIR.iterdir()) == before, (
        f"{name} wrote files into notebooks/"
    )
