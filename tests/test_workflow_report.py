"""The HTML report of a workflow run (jaxcomp.workflow.report), checked in a real browser.

A fake run directory following the runner's contract (run.json, config.toml, stage.json
files with matplotlib figures and an ECSV table) is written once per module; the report
must show everything in it, escape all text, warn about (or, strictly, refuse) missing
files, and render offline in headless Chromium with every image decoded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jaxcomp.workflow.report import ECE_THRESHOLD, write_report

PAPER = {
    "physical": {"p50": 0.007, "p90": 0.200, "p95": 0.356},
    "photometric": {"p50": 0.006, "p90": 0.177, "p95": 0.321},
}
# ours: physical passes everywhere, photometric p95 fails; ECE passes for physical only
OURS = {
    "physical": {"p50": 0.0051, "p90": 0.1832, "p95": 0.3001},
    "photometric": {"p50": 0.0049, "p90": 0.170, "p95": 0.3402},
}
ECE = {"physical": 0.011, "photometric": 0.031}
RECOVERY = {
    "alpha": {"truth": -2.0, "low95": -2.21, "high95": -1.87, "median": -2.03},
    "log_m_c": {"truth": 5.2, "low95": 5.31, "high95": 5.9, "median": 5.55},
}
TITLES = {
    "library": "Cluster library",
    "validate": "Selection-function validation",
    "fit": "Demographics fit",
}
STAGES = [*TITLES, "correct"]  # "correct" has not run: no stage.json, so no title either
N_FIGURES = 4  # three PNG + one SVG, all from matplotlib


def _figure(path: Path, kind: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 2.4))
    x = np.linspace(0, 1, 50)
    ax.plot(x, x**2 if kind == "a" else np.sin(6 * x), color="tab:blue")
    ax.set_title(kind)
    fig.savefig(path, dpi=60)
    plt.close(fig)


def _stage(run_dir: Path, name: str, **fields) -> Path:
    stage_dir = run_dir / name
    stage_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "stage": name,
        "title": TITLES[name],
        "description": "",
        "fingerprint": f"fp-{name}",
        "status": "done",
        "started": "2026-03-01T10:00:00+00:00",
        "seconds": 12.5,
        "seed": 7,
        "config": {},
        "metrics": {},
        "figures": [],
        "tables": [],
    }
    record.update(fields)
    (stage_dir / "stage.json").write_text(json.dumps(record, indent=1))
    return stage_dir


def _make_run(run_dir: Path) -> Path:
    from astropy.table import Table

    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "name": "ngc628c-test",
                "config_hash": "c0ffee",
                "jaxcomp_version": "0.0.test",
                "versions": {"jax": "0.0", "numpy": np.__version__},
                "platform": "Linux-test",
                "created": "2026-03-01T09:59:00+00:00",
                "updated": "2026-03-01T10:30:00+00:00",
                "stages": STAGES,
                "seed": 7,
            }
        )
    )
    (run_dir / "config.toml").write_text(
        '[run]\nname = "ngc628c-test"\nseed = 7\n\n[library]\nn = 2000\n'
    )

    library = run_dir / "library"
    library.mkdir()
    _figure(library / "mass_age.png", "a")
    _figure(library / "mass_age.svg", "b")
    rng = np.random.default_rng(1)
    table = Table(
        {
            "cluster_id": np.arange(45),
            "log_mass": rng.uniform(2, 6, 45),
            "log_age": rng.uniform(6, 10, 45),
        }
    )
    table["log_mass"].unit = "dex(solMass)"
    table.write(library / "sample.ecsv", format="ascii.ecsv")
    _stage(
        run_dir,
        "library",
        description="Draws a cluster library from SLUG-like priors.\n\nSecond paragraph,\nwrapped "
        "over lines.",
        metrics={
            "n_clusters": 2000,
            "fraction_bright": 0.12345678,
            "flags": {"ok": True, "mode": "slug"},
            "mass_range": [2.0, 8.0],
        },
        figures=[
            {"path": "mass_age.png", "caption": "Masses and ages"},
            {"path": "mass_age.svg", "caption": "The same, as SVG"},
        ],
        tables=[{"path": "sample.ecsv", "caption": "First clusters", "max_rows": 10}],
        config={"n": 2000},
    )

    validate = run_dir / "validate"
    validate.mkdir()
    _figure(validate / "reliability.png", "b")
    _stage(
        run_dir,
        "validate",
        metrics={"percentiles": OURS, "paper": PAPER, "ece": ECE, "n_test": 5000},
        figures=[{"path": "reliability.png", "caption": "Reliability diagram"}],
        notes=["Photometric p95 is above the paper's value."],
    )

    fit = run_dir / "fit"
    fit.mkdir()
    _figure(fit / "corner.png", "a")
    _stage(
        run_dir,
        "fit",
        metrics={"recovery": RECOVERY, "r_hat_max": 1.004},
        figures=[{"path": "corner.png", "caption": "Posterior"}],
        seed=None,
    )
    # "correct" has no stage.json: not run yet
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return _make_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def report_html(run_dir) -> tuple[Path, str]:
    path = write_report(run_dir)
    return path, path.read_text(encoding="utf-8")


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report.html"))
    return copy


def _edit_stage(run_dir: Path, name: str, **changes) -> None:
    path = run_dir / name / "stage.json"
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def test_report_shows_the_whole_run(run_dir, report_html):
    path, text = report_html
    assert path == run_dir / "report.html"
    for title in TITLES.values():
        assert title in text
    for number in ("0.007", "0.200", "0.356", "0.006", "0.177", "0.321"):
        assert number in text
    assert "missing file" not in text
    not_run = re.search(
        r'<section class="stage" id="stage-4-correct">.*?</section>', text, re.S
    ).group(0)
    assert "<h2>4. correct</h2>" in not_run and "not run" in not_run
    # every figure embedded as a data URI, nothing loaded from elsewhere, no script
    sources = re.findall(r'<img[^>]*\ssrc="([^"]*)"', text)
    assert len(sources) == N_FIGURES
    assert all(
        s.startswith(("data:image/png;base64,", "data:image/svg+xml;base64,")) for s in sources
    )
    assert sum(s.startswith("data:image/svg+xml;base64,") for s in sources) == 1
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    assert "url(" not in text and "@import" not in text and "<script" not in text.lower()
    # the comparison table: 5 of 6 percentiles pass (photometric p95 fails), ECE passes for physical
    # only
    comparison = re.search(r'<table class="comparison">.*?</table>', text, re.S).group(0)
    assert comparison.count('class="mark pass"') == 6 and comparison.count('class="mark fail"') == 2
    assert f"&lt; {ECE_THRESHOLD:.3f}" in comparison
    assert "6 of 8 checks pass" in text
    # the recovery table: alpha inside, log_m_c outside
    recovery = re.search(r'<table class="recovery">.*?</table>', text, re.S).group(0)
    assert recovery.count("✓ inside") == 1 and recovery.count("✗ outside") == 1
    # the generic metrics (flattened), the table (10 of 45 rows, with the unit), the notes, the
    # config
    assert "flags.ok" in text and "0.1235" in text and "n_test" in text and "r_hat_max" in text
    assert "First 10 of 45 rows" in text and "log_mass [dex(solMass)]" in text
    data_table = re.search(r'<table class="data">.*?</table>', text, re.S).group(0)
    assert data_table.count("<tr>") == 11
    assert "Photometric p95 is above the paper&#x27;s value." in text
    assert "[library]\nn = 2000" in text and "<details>" in text
    assert "<p>Second paragraph, wrapped over lines.</p>" in text
    # table of contents links to each stage section in run order
    anchors = re.findall(r'<li><a href="#([^"]+)">', text)
    assert (
        anchors == re.findall(r'<section class="stage" id="([^"]+)">', text) and len(anchors) == 4
    )


def test_missing_files_warn_and_strict_raises(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    (run / "fit" / "corner.png").unlink()
    _edit_stage(run, "validate", tables=[{"path": "gone.ecsv", "caption": "absent"}])
    text = write_report(run).read_text()
    assert "missing file: fit/corner.png" in text and "missing file: validate/gone.ecsv" in text
    assert len(re.findall(r"<img\s", text)) == N_FIGURES - 1
    with pytest.raises(FileNotFoundError, match=r"validate/gone\.ecsv, fit/corner\.png"):
        write_report(run, tmp_path / "strict.html", strict=True)
    assert not (tmp_path / "strict.html").exists()
    # the command line: --strict fails with status 2, without it the report is written
    from jaxcomp.cli import main

    assert main(["report", str(run), "--out", str(tmp_path / "cli.html"), "--strict"]) == 2
    assert main(["report", str(run), "--out", str(tmp_path / "cli.html")]) == 0
    assert "missing file: fit/corner.png" in (tmp_path / "cli.html").read_text()


def test_text_is_escaped(run_dir, tmp_path):
    run = _copy_run(run_dir, tmp_path)
    evil = "<script>alert('x')</script>"
    _edit_stage(
        run,
        "fit",
        figures=[{"path": "corner.png", "caption": evil}],
        notes=[evil],
        description=evil,
        title=f"Fit {evil}",
        metrics={"label": evil, evil: 1.0},
    )
    text = write_report(run).read_text()
    assert "<script" not in text.lower()
    assert text.count("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;") >= 6
    # a stage name or file path that leaves the run directory is refused, not read
    _edit_stage(run, "fit", figures=[{"path": "../../../etc/passwd.png", "caption": "x"}])
    text = write_report(run).read_text()
    assert "figure path outside the run directory" in text
    with pytest.raises(ValueError, match="outside the run directory"):
        write_report(run, strict=True)


# ---------------------------------------------------------------------------------------
# the real browser

_IMAGE_CHECK = """
<div id="img-check">pending</div>
<script>
window.addEventListener("load", function () {
  var images = document.images, ok = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { ok++; }
  }
  document.getElementById("img-check").textContent = "ok=" + ok + " total=" + images.length;
});
</script>
"""


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    # no pip-installable browser renders the page independently: without Chromium this test is
    # skipped with the reason in pytest's summary, except in CI (.ci/run installs Chromium and
    # sets JAXCOMP_REQUIRE_CHROMIUM=1, so a missing browser fails there)
    message = (
        "headless Chromium is needed to check the report renders: "
        "apt-get install chromium (Debian's package, /usr/bin/chromium)"
    )
    if os.environ.get("JAXCOMP_REQUIRE_CHROMIUM") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--disable-crash-reporter",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
    ]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"chromium did not finish within 120 s: {' '.join(command)}\n{error.stderr}")


def test_report_renders_in_headless_chromium(report_html, tmp_path):
    binary = _chromium()
    path, text = report_html
    checked = tmp_path / "checked.html"
    assert text.count("</body>") == 1
    checked.write_text(text.replace("</body>", _IMAGE_CHECK + "</body>"), encoding="utf-8")

    dump = _run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", checked.as_uri())
    found = re.search(r'<div id="img-check">ok=(\d+) total=(\d+)</div>', dump.stdout)
    assert found, (
        f"no image check in chromium's DOM (exit {dump.returncode}):\n{dump.stderr[-2000:]}"
    )
    ok, total = int(found.group(1)), int(found.group(2))
    assert total == N_FIGURES and ok == N_FIGURES, f"{ok} of {total} images decoded"
    for title in [*TITLES.values(), "4. correct"]:
        assert title in dump.stdout

    screenshot = tmp_path / "page.png"
    shot = _run_chromium(
        binary,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        "--window-size=1200,1600",
        path.as_uri(),
    )
    assert screenshot.is_file(), f"no screenshot (exit {shot.returncode}):\n{shot.stderr[-2000:]}"
    import matplotlib.image

    pixels = matplotlib.image.imread(screenshot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50 and pixels.std() > 0.05, "the screenshot is (nearly) blank"
