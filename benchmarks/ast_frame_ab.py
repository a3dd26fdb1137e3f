"""CPU time per artificial-cluster frame of two jaxcomp checkouts, run side by side.

The demo's frame design (``data/workflows/demo.toml``: the 1500 x 1500 px mock crop, 25
clusters per frame, radii 1-10 pc, ``reprocess="local"``, 5 px edge margin): ``--frames``
frames after 5 warm-up frames, per-step CPU [ms/frame] from ``run_frame``'s timers and the
process CPU time. With ``--against OTHER_CHECKOUT`` the same frames run at the same time in
a second process importing jaxcomp from that checkout (both see the same machine load), for
``--rounds`` rounds; the ratios of the two are printed, and with ``--compare`` every output
table (labels, measured photometry, the local catalogues) is checked for exact equality.

Usage::

    python benchmarks/ast_frame_ab.py --against /path/to/other/checkout --json out.json

Nothing here asserts on time.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core per process
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_model, load_average, n_cores  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _frames(n_frames: int, dump: str | None) -> dict:
    """Run the frames in this process; per-step CPU [ms/frame]; optionally dump every table."""
    import importlib

    from astropy.table import Table

    from jaxcomp.ast.inject import prepare_field, run_frame
    from jaxcomp.ast.mock import make_mock_field
    from jaxcomp.library import LibraryConfig, generate_library

    local = importlib.import_module("jaxcomp.ast.local")
    catalogues = []
    original = local.run_pipeline_local

    def capture(*args, **kwargs):
        res = original(*args, **kwargs)
        catalogues.append(res.catalogue)
        return res

    local.run_pipeline_local = capture
    field = make_mock_field("small", seed=0)
    base = prepare_field(field)
    lib = Table(dict(generate_library(2000, LibraryConfig(), seed=1)))
    if "r_eff_pc" in lib.colnames:
        lib.remove_column("r_eff_pc")

    def one(k: int):
        rows = lib[(k * 25) % 1900 : (k * 25) % 1900 + 25]
        catalogues.clear()
        return run_frame(
            field,
            rows,
            r_eff_pc=float(1 + k % 10),
            seed=k,
            frame=k,
            baseline=base,
            reprocess="local",
            edge_margin_px=5,
        )

    for k in range(5):  # warm-up (caches of convolved cores, imports)
        one(1000 + k)
    steps: dict[str, float] = {}
    c0 = time.process_time()
    for k in range(n_frames):
        out = one(k)
        for name, v in out.meta["timings"].items():
            steps[name] = steps.get(name, 0.0) + v["cpu_s"]
        if dump:
            _dump(out, Path(dump) / f"frame{k:03d}")
            for j, cat in enumerate(catalogues):
                if cat is not None:
                    _dump(cat, Path(dump) / f"frame{k:03d}_local{j}")
    cpu = time.process_time() - c0
    return {
        "process_cpu_ms_per_frame": 1e3 * cpu / n_frames,
        "steps_cpu_ms_per_frame": {k: 1e3 * v / n_frames for k, v in steps.items()},
    }


def _dump(table, stem: Path) -> None:
    arrays, meta = {}, {}
    for name in table.colnames:
        col = table[name]
        arrays[name] = np.asarray(col)
        meta[name] = [str(col.dtype), None if col.unit is None else str(col.unit)]
    np.savez(f"{stem}.npz", **arrays)
    Path(f"{stem}.json").write_text(json.dumps({"columns": list(table.colnames), "meta": meta}))


def _compare(a: Path, b: Path) -> dict:
    """Exact equality of every dumped table (columns, dtypes, units, values, NaN positions)."""
    names = sorted(p.stem for p in a.glob("*.json"))
    if names != sorted(p.stem for p in b.glob("*.json")):
        return {"tables": len(names), "differences": ["different sets of tables"]}
    diffs = []
    for stem in names:
        if (a / f"{stem}.json").read_text() != (b / f"{stem}.json").read_text():
            diffs.append(f"{stem}: columns/dtypes/units")
            continue
        za, zb = np.load(a / f"{stem}.npz"), np.load(b / f"{stem}.npz")
        for col in za.files:
            x, y = za[col], zb[col]
            if x.dtype != y.dtype or not np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
                diffs.append(f"{stem}: {col}")
    return {"tables": len(names), "differences": diffs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--against", help="another jaxcomp checkout, run side by side")
    p.add_argument("--compare", action="store_true", help="check the outputs for exact equality")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dump", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(_frames(a.frames, a.dump)))
        return 0
    result = {
        "machine": {
            "cpu": cpu_model(),
            "cores": n_cores(),
            "load_average_at_start": load_average(),
        },
        "frames": a.frames,
        "design": "demo: small mock crop, 25 clusters/frame, r_eff 1-10 pc, local, edge 5 px",
        "rounds": [],
    }
    checkouts = {"this": REPO} | ({"other": Path(a.against).resolve()} if a.against else {})
    with tempfile.TemporaryDirectory(prefix="ast_frame_ab_") as tmp:
        for r in range(a.rounds):
            procs = {}
            for name, root in checkouts.items():
                cmd = [sys.executable, __file__, "--worker", "--frames", str(a.frames)]
                if a.compare and r == 0:
                    (Path(tmp) / name).mkdir()
                    cmd += ["--dump", str(Path(tmp) / name)]
                env = dict(os.environ, PYTHONPATH=str(root))
                procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
            row = {
                n: json.loads(pr.communicate()[0].strip().splitlines()[-1])
                for n, pr in procs.items()
            }
            result["rounds"].append(row)
            line = ", ".join(f"{n} {v['process_cpu_ms_per_frame']:.1f}" for n, v in row.items())
            print(f"round {r}: CPU ms/frame {line}", flush=True)
        if a.compare and a.against:
            result["equality"] = _compare(Path(tmp) / "this", Path(tmp) / "other")
            print(f"exact equality: {result['equality']}")
    if a.against:
        this = np.mean([r["this"]["process_cpu_ms_per_frame"] for r in result["rounds"]])
        other = np.mean([r["other"]["process_cpu_ms_per_frame"] for r in result["rounds"]])
        result["cpu_ratio_this_over_other"] = float(this / other)
        print(f"mean CPU per frame: this {this:.1f} ms, other {other:.1f} ms ({this / other:.3f}x)")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
