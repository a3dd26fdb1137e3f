"""p_obs throughput of a SelectionFunction versus numpy and PyTorch CPU baselines.

Usage::

    python benchmarks/bench_selection_throughput.py            # full run (1e6 points)
    python benchmarks/bench_selection_throughput.py --quick    # CI smoke run (< 30 s)
    python benchmarks/bench_selection_throughput.py --json results.json
    python benchmarks/bench_selection_throughput.py --sweep-flags   # also measure XLA flags

For a 3-512-512-1 (and 5-512-512-1) network with exact-erf GELU, the same
weights are evaluated by

* jaxcomp: ``evaluate_in_chunks(SelectionFunction.__call__, sf, points)`` at
  several chunk sizes, and the plain ``jax.jit(SelectionFunction.__call__)`` on
  one big batch;
* numpy: float32 matmuls plus ``scipy.special.erf`` GELU, in chunks;
* PyTorch CPU: ``nn.Sequential(Linear, GELU(), ...)`` under ``torch.no_grad``,
  ``torch.set_num_threads(cores)``, in a subprocess (the torch venv) when torch is
  not importable here.

All three must agree to 1e-5 in p before anything is timed.  The points are
cut into blocks of ``--block-points`` (default 65,536); each round times every
configuration on one block, in an order rotated from round to round, so that
background load falls on all of them alike and, over the default 30 rounds,
every configuration sweeps the 1e6 points twice.  The table shows points/s
from the median / best / worst block; ratios are given as ratio of medians,
ratio of bests (least-disturbed rounds) and the spread of the per-round
(paired) ratios.  The plain jitted call on one batch of all 1e6 points is
compared with ``evaluate_in_chunks`` on the same 1e6 points separately.
Nothing is asserted on time.

Also reported: the fraction of this machine's float32 matmul peak (a 4096^2
``jnp.dot`` measured in the same run) reached, counting 2*(d*512 + 512*512 + 512)
FLOPs per point and nothing for activations, and optional variants (layout,
explicit precision, no ensemble vmap) that compute the same p.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TOLERANCE = 1e-5
TARGET_VS_TORCH = 1.3
DEFAULT_FLAG_SETS = (
    ("xnnpack", "--xla_cpu_use_xnnpack=true"),
    ("xnn_fusion_dot_eltwise_reduce", "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce"),
    ("ynn_fusion_dot", "--xla_cpu_experimental_ynn_fusion_type=dot"),
    (
        "onednn_dot_eltwise",
        "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot,eltwise",
    ),
    ("no_multi_thread_eigen", "--xla_cpu_multi_thread_eigen=false"),
    ("fast_math (changes maths)", "--xla_cpu_enable_fast_math=true"),
)


# ----------------------------------------------------------------- the models
def build_selection_function(n_inputs: int, width: int, seed: int):
    import jax
    import jax.numpy as jnp

    from jaxcomp.selection.function import SelectionFunction
    from jaxcomp.selection.inputs import PHOTOMETRIC_INPUTS, PHYSICAL_INPUTS
    from jaxcomp.selection.network import NetworkConfig, init_network

    specs = {3: PHYSICAL_INPUTS, 5: PHOTOMETRIC_INPUTS}[n_inputs]
    config = NetworkConfig(n_inputs, (width, width))
    weights = jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], init_network(config, seed)[1])
    lows = np.array([s.domain[0] for s in specs])
    highs = np.array([s.domain[1] for s in specs])
    return SelectionFunction.from_weights(
        input_specs=specs,
        mean=(lows + highs) / 2,
        scale=(highs - lows) / 3.5,
        network_config=config,
        weights=weights,
        out_of_domain="clip",
    )


def sample_points(sf, n: int, seed: int) -> np.ndarray:
    lows = np.asarray(sf.domain_lower, dtype=np.float64)
    highs = np.asarray(sf.domain_upper, dtype=np.float64)
    return np.random.default_rng(seed).uniform(lows, highs, size=(n, lows.size)).astype(np.float32)


def numpy_parameters(sf) -> dict:
    """Member 0's layers (kernels as (in, out)) and the float32 standardisation of ``sf``."""
    from jaxcomp.selection.function import _flatten_weights

    flat = {name: np.asarray(value)[0] for name, value in _flatten_weights(sf.weights).items()}
    n_hidden = len(sf.network_config.hidden_widths)
    kernels = [flat[f"hidden.{i}.kernel"] for i in range(n_hidden)] + [flat["head.kernel"]]
    biases = [flat[f"hidden.{i}.bias"] for i in range(n_hidden)] + [flat["head.bias"]]
    return {
        "kernels": [k.astype(np.float32) for k in kernels],
        "biases": [b.astype(np.float32) for b in biases],
        "mean": np.asarray(sf.feature_mean, np.float32),
        "scale": np.asarray(sf.feature_scale, np.float32),
        "lower": np.asarray(sf.domain_lower, np.float32),
        "upper": np.asarray(sf.domain_upper, np.float32),
    }


def numpy_p(params: dict, points: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Reference p_obs in float32 numpy: clip, standardise, exact-erf GELU MLP, sigmoid."""
    from scipy.special import erf, expit

    inv_sqrt2 = np.float32(1.0 / math.sqrt(2.0))
    half = np.float32(0.5)
    out = np.empty(points.shape[0], dtype=np.float32)
    kernels, biases = params["kernels"], params["biases"]
    for start in range(0, points.shape[0], chunk):
        x = np.clip(points[start : start + chunk], params["lower"], params["upper"])
        h = (x - params["mean"]) / params["scale"]
        for kernel, bias in zip(kernels[:-1], biases[:-1]):
            h = h @ kernel
            h += bias
            gate = erf(h * inv_sqrt2)
            gate += 1.0
            gate *= half
            h *= gate
        logit = (h @ kernels[-1])[:, 0] + biases[-1][0]
        out[start : start + chunk] = expit(logit)
    return out


# ----------------------------------------------------- jaxcomp and its variants
def jax_functions():
    """Pure ``(sf, x) -> p`` functions that compute the same p_obs as
    ``SelectionFunction.__call__``."""
    import jax
    import jax.numpy as jnp

    from jaxcomp.selection.function import SelectionFunction, _flatten_weights
    from jaxcomp.selection.network import apply_network

    def layers(sf):
        flat = _flatten_weights(sf.weights)
        n_hidden = len(sf.network_config.hidden_widths)
        kernels = [flat[f"hidden.{i}.kernel"] for i in range(n_hidden)] + [flat["head.kernel"]]
        biases = [flat[f"hidden.{i}.bias"] for i in range(n_hidden)] + [flat["head.bias"]]
        return kernels, biases  # leading member axis on each

    def no_member_vmap(sf, x):
        """Single-member shortcut: no vmap over a member axis of length 1."""
        member = jax.tree.map(lambda leaf: leaf[0], sf.weights)
        return jax.nn.sigmoid(apply_network(sf.graphdef, member, sf.features(x)))

    def make_manual(precision):
        def manual(sf, x):
            kernels, biases = layers(sf)
            h = sf.features(x)
            for kernel, bias in zip(kernels[:-1], biases[:-1]):
                h = jax.nn.gelu(
                    jnp.dot(h, kernel[0], precision=precision) + bias[0], approximate=False
                )
            return jax.nn.sigmoid(
                (jnp.dot(h, kernels[-1][0], precision=precision) + biases[-1][0])[..., 0]
            )

        return manual

    def erf_gelu(sf, x):
        """GELU written as 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's formula) instead of jax's erfc
        form."""
        kernels, biases = layers(sf)
        h = sf.features(x)
        for kernel, bias in zip(kernels[:-1], biases[:-1]):
            z = h @ kernel[0] + bias[0]
            h = 0.5 * z * (1.0 + jax.lax.erf(z * np.float32(math.sqrt(0.5))))
        return jax.nn.sigmoid((h @ kernels[-1][0] + biases[-1][0])[..., 0])

    def transposed(sf, x):
        """Feature-major layout: activations (width, n), kernels applied as W^T h."""
        kernels, biases = layers(sf)
        h = sf.features(x).T
        for kernel, bias in zip(kernels[:-1], biases[:-1]):
            h = jax.nn.gelu(kernel[0].T @ h + bias[0][:, None], approximate=False)
        return jax.nn.sigmoid((kernels[-1][0].T @ h + biases[-1][0][:, None])[0])

    return {
        "SelectionFunction.__call__": SelectionFunction.__call__,
        "no member vmap": no_member_vmap,
        "manual MLP, default precision": make_manual(None),
        "manual MLP, precision=HIGHEST": make_manual(jax.lax.Precision.HIGHEST),
        "transposed layout": transposed,
        "GELU via erf (same function, other rounding)": erf_gelu,
    }


# ------------------------------------------------------------------ benchmark
def run_network(
    args, n_inputs: int, worker, tmp: Path, matmul, layer_gemm, with_variants: bool
) -> dict:
    import jax

    from jaxcomp.selection.evaluate import evaluate_in_chunks

    sf = build_selection_function(n_inputs, args.width, seed=args.seed)
    points = sample_points(sf, args.points, seed=args.seed + 1)
    params = numpy_parameters(sf)
    functions = jax_functions()
    flops_per_point = 2.0 * (n_inputs * args.width + args.width * args.width + args.width)
    label = f"{n_inputs}-{args.width}-{args.width}-1"
    print(
        f"\n=== network {label}: {args.points:,} points, timed in blocks of "
        f"{min(args.block_points, args.points):,}, "
        f"{args.rounds} rounds, "
        f"{flops_per_point / 1e3:.1f} kFLOP/point ==="
    )

    # ---------------------------------------------------------- agreement first
    n_check = min(args.points, args.check_points)
    check = points[:n_check]
    reference = numpy_p(params, check)
    agreement = {}
    call = functions["SelectionFunction.__call__"]
    agreement["jaxcomp evaluate_in_chunks"] = evaluate_in_chunks(
        call, sf, check, chunk_size=args.default_chunk
    )
    agreement["jaxcomp jit(one batch)"] = np.asarray(jax.jit(call)(sf, check))
    variants = (
        [name for name in functions if name != "SelectionFunction.__call__"]
        if with_variants
        else []
    )
    for name in variants:
        agreement[f"variant: {name}"] = evaluate_in_chunks(
            functions[name], sf, check, chunk_size=args.default_chunk
        )
    if worker is not None:
        weights_file, points_file, out_file = (
            tmp / f"w{n_inputs}.npz",
            tmp / f"x{n_inputs}.npz",
            tmp / "p.npz",
        )
        np.savez(
            weights_file,
            n_layers=len(params["kernels"]),
            **{f"kernel_{i}": k for i, k in enumerate(params["kernels"])},
            **{f"bias_{i}": b for i, b in enumerate(params["biases"])},
            **{k: params[k] for k in ("mean", "scale", "lower", "upper")},
        )
        np.savez(points_file, x=points)
        worker.request(
            {"cmd": "mlp_load", "weights": str(weights_file), "points": str(points_file)}
        )
        worker.request({"cmd": "mlp_predict", "n": n_check, "out": str(out_file), "chunk": 4096})
        with np.load(out_file) as npz:
            agreement["torch"] = npz["p"]
    max_diff = {name: float(np.max(np.abs(p - reference))) for name, p in agreement.items()}
    print(
        f"agreement with numpy on {n_check:,} points (max |dp|): "
        + ", ".join(f"{k}={v:.1e}" for k, v in max_diff.items())
    )
    bad = {k: v for k, v in max_diff.items() if not v <= TOLERANCE}
    if bad:
        raise SystemExit(
            f"implementations disagree by more than {TOLERANCE} in p: {bad}; not timing"
        )

    # ---------------------------------------------------------------- timing
    import jax.numpy as jnp

    # Each configuration is timed on blocks of `block` points (a quarter of the set by default), one
    # block per round, with the configurations interleaved inside every round and their order
    # rotated;
    # over the rounds every configuration sweeps the whole point set (several times).  Short,
    # interleaved units keep all configurations under the same background load.
    block = min(args.block_points, args.points)
    n_blocks = args.points // block
    blocks = [points[i * block : (i + 1) * block] for i in range(n_blocks)]
    configs: dict[str, callable] = {}
    for chunk in args.chunk_sizes:
        configs[f"jaxcomp evaluate_in_chunks chunk={chunk}"] = lambda b, c=chunk: (
            evaluate_in_chunks(call, sf, blocks[b], chunk_size=c)
        )
    if args.plain:
        plain = jax.jit(call)
        device_blocks = [jnp.asarray(b) for b in blocks]
        configs[f"jaxcomp jit(one batch of {block:,})"] = lambda b: plain(
            sf, device_blocks[b]
        ).block_until_ready()
    for name in variants:
        configs[f"variant: {name} chunk={args.default_chunk}"] = lambda b, f=functions[name]: (
            evaluate_in_chunks(f, sf, blocks[b], chunk_size=args.default_chunk)
        )
    if args.numpy:
        configs["numpy + scipy erf"] = lambda b: numpy_p(params, blocks[b])
    if worker is not None:
        for chunk in args.torch_chunk_sizes:
            configs[f"torch chunk={chunk}"] = lambda b, c=chunk: worker.request(
                {"cmd": "mlp_time", "chunk": c, "start": b * block, "stop": (b + 1) * block}
            )["seconds"]

    # warm-up (compiles every jax shape, first-touches torch/numpy buffers); not timed
    for name, run in configs.items():
        run(0)
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    peak_gflops: list[float] = []  # the matmul peak, re-measured every round under the same load
    layer_gflops: list[float] = []  # the hidden-layer GEMM shape (4096x512 @ 512x512), likewise
    layer_calls = 4 if args.quick else 16
    for round_index in range(args.rounds):
        peak_gflops.append(2.0 * args.peak_size**3 / _common.timed(matmul)[0] / 1e9)
        layer_gflops.append(
            layer_calls * 2.0 * 4096 * args.width**2 / _common.timed(layer_gemm)[0] / 1e9
        )
        names = list(configs)
        shift = round_index % len(
            names
        )  # rotate the order each round: no configuration always goes first
        for name in names[shift:] + names[:shift]:
            elapsed, reported = _common.timed(configs[name], round_index % n_blocks)
            seconds[name].append(reported if name.startswith("torch") else elapsed)
        print(
            f"  round {round_index + 1}/{args.rounds} done (matmul peak {peak_gflops[-1]:.0f} "
            "GFLOP/s, "
            f"load average {_common.load_average()})",
            flush=True,
        )

    results = {}
    flop_per_block = flops_per_point * block
    for name, values in seconds.items():
        s = _common.stats(values)
        results[name] = {
            "seconds_per_block": s,
            "points_per_s_median": block / s["median"],
            "points_per_s_best": block / s["min"],
            "points_per_s_worst": block / s["max"],
            "gflops_median": flop_per_block / s["median"] / 1e9,
            "fraction_of_peak_median": statistics.median(
                flop_per_block / t / 1e9 / g for t, g in zip(values, peak_gflops)
            ),
            "fraction_of_peak_best_vs_best": flop_per_block / s["min"] / 1e9 / max(peak_gflops),
            "fraction_of_layer_gemm_median": statistics.median(
                flop_per_block / t / 1e9 / g for t, g in zip(values, layer_gflops)
            ),
        }

    # The plain jitted call on ONE big batch of all the points, against evaluate_in_chunks on the
    # same points.
    full = {}
    if args.plain and args.full_rounds:
        plain_full = jax.jit(call)
        all_points = jnp.asarray(points)
        full_configs = {
            f"evaluate_in_chunks chunk={args.default_chunk}, all {args.points:,} points": lambda: (
                evaluate_in_chunks(call, sf, points, chunk_size=args.default_chunk)
            ),
            f"jit(one batch of {args.points:,})": lambda: plain_full(
                sf, all_points
            ).block_until_ready(),
        }
        for run in full_configs.values():
            run()
        full = {name: [] for name in full_configs}
        for round_index in range(args.full_rounds):
            for name, run in full_configs.items():
                full[name].append(_common.timed(run)[0])
        rows = [
            [name, f"{args.points / statistics.median(v):,.0f}", f"{args.points / min(v):,.0f}"]
            for name, v in full.items()
        ]
        print(_common.table(rows, ["whole set, interleaved", "pts/s median", "best"]))

    def best_of(prefix: str) -> str | None:
        names = [n for n in results if n.startswith(prefix)]
        return (
            min(names, key=lambda n: results[n]["seconds_per_block"]["median"]) if names else None
        )

    default_name = f"jaxcomp evaluate_in_chunks chunk={args.default_chunk}"
    if default_name not in results:
        default_name = best_of("jaxcomp evaluate_in_chunks")
    best_chunk_name = best_of("jaxcomp evaluate_in_chunks")
    torch_name = best_of("torch")
    torch_fastest_block = min(
        (n for n in results if n.startswith("torch")),
        default=None,
        key=lambda n: results[n]["seconds_per_block"]["min"],
    )
    numpy_name = "numpy + scipy erf" if "numpy + scipy erf" in results else None

    rows = []
    for name, r in results.items():
        marks = "".join(m for m, n in (("*", best_chunk_name), ("T", torch_name)) if n == name)
        rows.append(
            [
                name + (f" [{marks}]" if marks else ""),
                f"{r['points_per_s_median']:,.0f}",
                f"{r['points_per_s_best']:,.0f}",
                f"{r['points_per_s_worst']:,.0f}",
                f"{100 * r['fraction_of_peak_median']:.1f}%",
                f"{100 * r['fraction_of_layer_gemm_median']:.1f}%",
            ]
        )
    print(
        _common.table(
            rows, ["configuration", "pts/s median", "best", "worst", "of peak", "of layer GEMM"]
        )
    )
    print(
        f"  ('of peak': median over rounds of (FLOPs/s) / ({args.peak_size}^2 jnp.dot FLOP/s of "
        "that round); "
        f"peak per round {', '.join(f'{g:.0f}' for g in peak_gflops)} GFLOP/s; 'of layer GEMM': "
        "the same against "
        f"jitted 4096x{args.width} @ {args.width}x{args.width} dots, "
        f"{', '.join(f'{g:.0f}' for g in layer_gflops)} GFLOP/s)"
    )

    def ratio(numerator: str | None, denominator: str | None) -> dict | None:
        if numerator is None or denominator is None:
            return None
        a, b = seconds[numerator], seconds[denominator]
        # paired per-round ratios: each round times both under the same background load
        paired = [y / x for x, y in zip(a, b)]
        return {
            "median_of_medians": statistics.median(b) / statistics.median(a),
            "best_vs_best": min(b) / min(a),
            "paired_median": statistics.median(paired),
            "paired_min": min(paired),
            "paired_max": max(paired),
        }

    summary = {
        "network": label,
        "matmul_peak_gflops_per_round": peak_gflops,
        "layer_gemm_gflops_per_round": layer_gflops,
        "flops_per_point": flops_per_point,
        "n_points": args.points,
        "block_points": block,
        "whole_set_seconds": {name: _common.stats(v) for name, v in full.items()},
        "rounds": args.rounds,
        "agreement_max_abs_dp_vs_numpy": max_diff,
        "results": results,
        "default_chunk": default_name,
        "best_chunk": best_chunk_name,
        "best_torch": torch_name,
        "ratios": {
            "jaxcomp_default_chunk/torch": ratio(default_name, torch_name),
            "jaxcomp_best_chunk/torch": ratio(best_chunk_name, torch_name),
            "jaxcomp_default_chunk/numpy": ratio(default_name, numpy_name),
            "jaxcomp_best_chunk/jaxcomp_default_chunk": ratio(best_chunk_name, default_name),
        },
        "torch_config_with_fastest_block": torch_fastest_block,
    }
    if torch_fastest_block is not None:
        best_torch_s = results[torch_fastest_block]["seconds_per_block"]["min"]
        summary["ratios_best_vs_fastest_torch_block"] = {
            "jaxcomp_default_chunk": best_torch_s
            / results[default_name]["seconds_per_block"]["min"],
            "jaxcomp_best_chunk": best_torch_s
            / results[best_chunk_name]["seconds_per_block"]["min"],
        }
    for name in results:
        if name.startswith("variant") or name.startswith("jaxcomp jit"):
            summary["ratios"][f"{name}/jaxcomp_default_chunk"] = ratio(name, default_name)
    for key, value in summary["ratios"].items():
        if value is not None:
            print(
                f"  {key}: {value['median_of_medians']:.2f}x "
                f"(best/best {value['best_vs_best']:.2f}x, per-round median "
                f"{value['paired_median']:.2f}x, "
                f"range {value['paired_min']:.2f}-{value['paired_max']:.2f}x)"
            )
    if "ratios_best_vs_fastest_torch_block" in summary:
        r = summary["ratios_best_vs_fastest_torch_block"]
        print(
            f"  fastest block vs fastest torch block ({torch_fastest_block}): default chunk "
            f"{r['jaxcomp_default_chunk']:.2f}x, best chunk {r['jaxcomp_best_chunk']:.2f}x"
        )
    return summary


def sweep_flags(args) -> dict:
    """Re-run the jaxcomp default-chunk measurement in child processes with different XLA_FLAGS."""
    child_args = [
        "--jax-only",
        "--networks",
        "3",
        "--chunk-sizes",
        str(args.default_chunk),
        "--no-plain",
        "--no-variants",
        "--points",
        str(args.sweep_points),
        "--rounds",
        str(args.sweep_repeats),
        "--full-rounds",
        "0",
        "--check-points",
        str(min(args.check_points, args.sweep_points)),
    ]
    script = Path(__file__).resolve()
    name_of = f"jaxcomp evaluate_in_chunks chunk={args.default_chunk}"

    def child(flags: str) -> dict:
        try:
            out = _common.rerun_with_xla_flags(script, flags, child_args)
        except Exception as error:  # noqa: BLE001 - a flag this jaxlib rejects
            return {"error": repr(error)[:300]}
        network = out["networks"][0]
        return {
            "seconds": network["results"][name_of]["seconds_per_block"],
            "max_abs_dp_vs_numpy": network["agreement_max_abs_dp_vs_numpy"][
                "jaxcomp evaluate_in_chunks"
            ],
        }

    print(
        f"\n=== XLA flag sweep (child processes, {args.sweep_points:,} points, 3-input network) ==="
    )
    sweep = {"default (before)": child("")}
    for name, flags in DEFAULT_FLAG_SETS:
        sweep[name] = {"flags": flags, **child(flags)}
    sweep["default (after)"] = child("")
    base = [
        sweep[k]["seconds"]["median"]
        for k in ("default (before)", "default (after)")
        if "seconds" in sweep[k]
    ]
    base_median = statistics.mean(base)
    rows = []
    for name, r in sweep.items():
        if "seconds" in r:
            r["speed_vs_default"] = base_median / r["seconds"]["median"]
            rows.append(
                [
                    name,
                    f"{args.sweep_points / r['seconds']['median']:,.0f}",
                    f"{r['speed_vs_default']:.2f}x",
                    f"{r['max_abs_dp_vs_numpy']:.1e}",
                ]
            )
        else:
            rows.append([name, "failed", "-", r["error"][:60]])
    print(_common.table(rows, ["XLA_FLAGS", "pts/s median", "vs default", "max|dp|"]))
    return sweep


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a CI smoke run (< 30 s)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--points", type=int, help="points to evaluate (default 1e6; quick 20k)")
    parser.add_argument(
        "--rounds", type=int, help="interleaved timing rounds, one block each (default 8; quick 1)"
    )
    parser.add_argument(
        "--block-points",
        type=int,
        default=65_536,
        help="points per timed block (one block per configuration per round)",
    )
    parser.add_argument(
        "--full-rounds",
        type=int,
        help="rounds of the whole-set jit(one batch) comparison (default 3)",
    )
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument(
        "--networks", type=int, nargs="+", choices=(3, 5), help="input dimensions (default 3 5)"
    )
    parser.add_argument(
        "--chunk-sizes", type=int, nargs="+", help="jaxcomp chunk sizes (default 1024..16384)"
    )
    parser.add_argument(
        "--default-chunk", type=int, help="jaxcomp's DEFAULT_CHUNK_SIZE unless given"
    )
    parser.add_argument(
        "--torch-chunk-sizes", type=int, nargs="+", help="torch batch sizes (best is reported)"
    )
    parser.add_argument(
        "--check-points", type=int, default=20_000, help="points in the agreement check"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--peak-size", type=int, default=4096, help="matrix size of the matmul-peak probe"
    )
    parser.add_argument(
        "--no-plain", dest="plain", action="store_false", help="skip jit(one batch)"
    )
    parser.add_argument("--no-numpy", dest="numpy", action="store_false", help="skip timing numpy")
    parser.add_argument(
        "--no-torch", dest="torch", action="store_false", help="skip the torch baseline"
    )
    parser.add_argument(
        "--variants",
        dest="variants",
        action="store_true",
        default=True,
        help="time the same-maths layout/precision variants (default, except with --quick)",
    )
    parser.add_argument(
        "--no-variants",
        dest="variants",
        action="store_false",
        help="skip the same-maths layout/precision variants",
    )
    parser.add_argument(
        "--jax-only", action="store_true", help="jaxcomp timings only (used by --sweep-flags)"
    )
    parser.add_argument(
        "--sweep-flags", action="store_true", help="also measure XLA_FLAGS in child processes"
    )
    parser.add_argument("--sweep-points", type=int, default=131_072)
    parser.add_argument("--sweep-repeats", type=int, default=5)
    args = parser.parse_args(argv)
    from jaxcomp.selection.evaluate import DEFAULT_CHUNK_SIZE

    args.default_chunk = args.default_chunk or DEFAULT_CHUNK_SIZE
    if args.quick:
        args.points = args.points or 20_000
        args.rounds = args.rounds or 1
        args.full_rounds = 0 if args.full_rounds is None else args.full_rounds
        args.chunk_sizes = args.chunk_sizes or [args.default_chunk]
        args.torch_chunk_sizes = args.torch_chunk_sizes or [4096]
        args.networks = args.networks or [3]
        args.check_points = min(args.check_points, 4096)
        args.peak_size = min(args.peak_size, 2048)
        if "--variants" not in (argv or sys.argv):
            args.variants = False
        args.sweep_points, args.sweep_repeats = min(args.sweep_points, 20_000), 1
    args.points = args.points or 1_000_000
    args.rounds = args.rounds or 30
    args.full_rounds = 3 if args.full_rounds is None else args.full_rounds
    args.chunk_sizes = args.chunk_sizes or [1024, 2048, 4096, 8192, 16384]
    args.torch_chunk_sizes = args.torch_chunk_sizes or [4096, 16384, 65536]
    args.networks = args.networks or [3, 5]
    if args.jax_only:
        args.numpy = args.torch = False
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import jax  # noqa: F401 - after argument parsing so --help is fast

    info = _common.machine_info()
    cores = info["cores"]
    print(
        f"machine: {info['cpu']}, {cores} cores, jax {info['jax']}, load average "
        f"{info['load_average_at_start']}"
        + (f", XLA_FLAGS={info['xla_flags']!r}" if info["xla_flags"] else "")
    )
    matmul = _common.matmul_runner(args.peak_size)
    layer_gemm = _common.layer_gemm_runner(4096, args.width, calls=4 if args.quick else 16)
    peak = _common.measure_matmul_peak(args.peak_size, repeats=2 if args.quick else 5)
    print(
        f"float32 matmul peak (jnp.dot {args.peak_size}^2): {peak['gflops_best']:.1f} GFLOP/s "
        "best, "
        f"{peak['gflops_median']:.1f} median (re-measured every round below)"
    )
    worker = _common.start_torch_worker(cores, required=False) if args.torch else None
    payload = {
        "benchmark": "selection_throughput",
        "quick": args.quick,
        "machine": info,
        "matmul_peak": peak,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    try:
        if worker is not None:
            info["torch"] = worker.info
            print(f"torch {worker.info['torch']} with {worker.info['threads']} threads", end="")
            if not args.quick:
                info["torch_matmul_peak_gflops"] = worker.request(
                    {"cmd": "matmul_peak", "size": args.peak_size}
                )["gflops_best"]
                print(
                    f"; its {args.peak_size}^2 matmul: {info['torch_matmul_peak_gflops']:.1f} "
                    "GFLOP/s",
                    end="",
                )
            print()
        with tempfile.TemporaryDirectory() as tmp:
            payload["networks"] = [
                run_network(
                    args,
                    n,
                    worker,
                    Path(tmp),
                    matmul,
                    layer_gemm,
                    with_variants=args.variants and i == 0,
                )
                for i, n in enumerate(args.networks)
            ]
    finally:
        if worker is not None:
            worker.close()
    if args.sweep_flags:
        payload["xla_flag_sweep"] = sweep_flags(args)

    parts = []
    for network in payload["networks"]:
        r = network["ratios"]
        bits = [network["network"]]
        for key, short in (
            ("jaxcomp_default_chunk/torch", "jaxcomp/torch"),
            ("jaxcomp_default_chunk/numpy", "jaxcomp/numpy"),
            ("jaxcomp_best_chunk/torch", "best-chunk jaxcomp/torch"),
        ):
            if r.get(key):
                bits.append(
                    f"{short}={r[key]['median_of_medians']:.2f}x (best/best "
                    f"{r[key]['best_vs_best']:.2f}x)"
                )
        bits.append(f"best chunk: {network['best_chunk'].rsplit('=', 1)[-1]}")
        bits.append(
            "peak fraction "
            f"{100 * network['results'][network['default_chunk']]['fraction_of_peak_median']:.0f}%"
        )
        parts.append(" ".join(bits))
    print(
        f"\nRATIOS (ratio of median block times; target jaxcomp/torch >= {TARGET_VS_TORCH}): "
        + " | ".join(parts)
    )
    if args.json:
        _common.write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
