"""Shared helpers for the jaxcomp benchmarks (timing, machine facts, the torch worker).

Nothing here asserts on time: the benchmarks print ratios against baselines
measured in the same run, because absolute numbers depend on the machine and on
whatever else it is doing.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TORCH_WORKER = HERE / "_torch_worker.py"
#: Interpreters tried for the PyTorch baseline when torch is not importable here.
TORCH_PYTHON_CANDIDATES = ("/work/venv-torch/bin/python",)


def n_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def machine_info() -> dict:
    import jax
    import numpy as np

    return {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": n_cores(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "jax_backend": jax.default_backend(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average_at_start": load_average(),
    }


def stats(seconds: list[float]) -> dict:
    """min / median / max of a list of timings (seconds)."""
    return {
        "min": min(seconds),
        "median": statistics.median(seconds),
        "max": max(seconds),
        "n": len(seconds),
        "all": [round(s, 5) for s in seconds],
    }


def timed(function, *args, **kwargs) -> tuple[float, object]:
    """Wall-clock seconds of one call and its result (the call must block)."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def matmul_runner(size: int = 4096):
    """A compiled, warmed-up ``() -> None`` that runs one float32 ``jnp.dot`` of two size^2
    matrices."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    return lambda: dot(a, b).block_until_ready()


def layer_gemm_runner(rows: int = 4096, width: int = 512, calls: int = 16):
    """A warmed-up ``() -> None`` running ``calls`` jitted (rows, width) @ (width, width) float32
    dots.

    This is the GEMM shape of a hidden layer: the rate one can hope for in the MLP.
    """
    import jax
    import jax.numpy as jnp

    h = jax.random.normal(jax.random.key(3), (rows, width), jnp.float32)
    w = jax.random.normal(jax.random.key(4), (width, width), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(h, w).block_until_ready()

    def run():
        for _ in range(calls):
            out = dot(h, w)
        out.block_until_ready()

    return run


def measure_matmul_peak(size: int = 4096, repeats: int = 5) -> dict:
    """float32 GFLOP/s of a large jitted ``jnp.dot`` (best and median of ``repeats``)."""
    run = matmul_runner(size)
    seconds = [timed(run)[0] for _ in range(repeats)]
    flops = 2.0 * size**3
    return {
        "size": size,
        "gflops_best": flops / min(seconds) / 1e9,
        "gflops_median": flops / statistics.median(seconds) / 1e9,
        "seconds": stats(seconds),
    }


def torch_python() -> str | None:
    """An interpreter that can import torch: this one, $JAXCOMP_BENCH_TORCH_PYTHON, or the torch
    venv."""
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    candidates = [os.environ.get("JAXCOMP_BENCH_TORCH_PYTHON", ""), *TORCH_PYTHON_CANDIDATES]
    for candidate in candidates:
        if candidate and (Path(candidate).exists() or shutil.which(candidate)):
            return candidate
    return None


class TorchWorker:
    """A long-lived PyTorch subprocess driven by JSON lines on stdin/stdout.

    Keeping one process alive lets the benchmarks interleave jaxcomp and torch
    measurements round by round, so background load hits both alike.  Arrays
    travel through ``.npz`` files in a temporary directory.
    """

    def __init__(self, python: str, threads: int):
        env = dict(os.environ)
        # The worker must not inherit JAX-specific settings, and must use `threads` cores.
        env.pop("XLA_FLAGS", None)
        env.setdefault("OMP_NUM_THREADS", str(threads))
        env.setdefault("MKL_NUM_THREADS", str(threads))
        self.process = subprocess.Popen(
            [python, "-u", str(TORCH_WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env=env,
        )
        self.info = self.request({"cmd": "hello", "threads": threads})

    def request(self, message: dict) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(
                f"torch worker exited (code {self.process.poll()}) on {message.get('cmd')!r}"
            )
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"torch worker failed on {message.get('cmd')!r}:\n{reply['error']}")
        return reply

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.request({"cmd": "quit"})
            except (RuntimeError, BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.process.kill()

    def __enter__(self) -> TorchWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_torch_worker(threads: int, *, required: bool) -> TorchWorker | None:
    python = torch_python()
    if python is None:
        message = (
            "PyTorch baseline unavailable: install torch==2.13.0 (pip install '.[bench]') or point "
            "JAXCOMP_BENCH_TORCH_PYTHON at an interpreter that has it"
        )
        if required:
            raise SystemExit(message)
        print(f"[warning] {message}; torch columns are skipped", file=sys.stderr)
        return None
    return TorchWorker(python, threads)


def write_json(path: str | os.PathLike, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=float) + "\n")
    print(f"wrote {path}")


def table(rows: list[list], header: list[str]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def rerun_with_xla_flags(
    script: Path, flags: str, extra_args: list[str], timeout: float = 3600
) -> dict:
    """Run ``script --jax-only --json TMP`` in a child process with ``XLA_FLAGS=flags``; return its
    JSON."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        env = dict(os.environ)
        env["XLA_FLAGS"] = flags
        subprocess.run(
            [sys.executable, str(script), *extra_args, "--json", str(out)],
            env=env,
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
        )
        return json.loads(out.read_text())
