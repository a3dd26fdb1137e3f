"""Seconds per training epoch: jaxcomp's compiled epoch versus an idiomatic PyTorch loop.

Usage::

    python benchmarks/bench_training.py             # full run (245,000 labels)
    python benchmarks/bench_training.py --quick     # CI smoke run (< 30 s)
    python benchmarks/bench_training.py --json results.json
    python benchmarks/bench_training.py --sweep-flags   # also measure XLA flags (child processes)

jaxcomp: ``jaxcomp.selection.training._train_epoch`` called exactly as ``_fit``
calls it (3-512-512-1 exact-GELU MLP, batch 4096, optax AdamW with linear
warm-up over 10% of 100 epochs' steps then cosine decay, one ``lax.scan`` per
epoch, weights and optimiser state donated).

PyTorch (CPU, float32, ``torch.set_num_threads(cores)``; run in the torch venv
when torch is not importable here): the same initial weights, data and
schedule with ``torch.optim.AdamW`` + ``LambdaLR``, ``BCEWithLogitsLoss`` and
shuffled index batches (``torch.randperm``), one Python step per batch.

The first epoch of each (compilation / warm-up) is not timed; the timed epochs
of all configurations are interleaved so background load hits them alike.
Optional variants of the jaxcomp epoch that keep the maths identical (batches
gathered once per epoch, explicit ``precision``) are timed the same way and
checked against the library epoch from the same state.  Nothing is asserted on
time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

TARGET_VS_TORCH = 1.5
DEFAULT_FLAG_SETS = (
    ("xnnpack", "--xla_cpu_use_xnnpack=true"),
    ("xnn_fusion_dot_eltwise_reduce", "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise,reduce"),
    ("ynn_fusion_dot", "--xla_cpu_experimental_ynn_fusion_type=dot"),
    (
        "onednn_dot_eltwise",
        "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_fusion_type=dot,eltwise",
    ),
    ("fast_math (changes maths)", "--xla_cpu_enable_fast_math=true"),
)


def make_data(n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised float32 features (n, 3) and float32 0/1 labels from jaxcomp's synthetic
    surface."""
    from jaxcomp.selection.synthetic import simulate_labels

    table = simulate_labels(n_labels, seed=seed)
    x = np.stack(
        [np.asarray(table[name], np.float64) for name in ("log_mass", "log_age", "av")], axis=-1
    )
    x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
    return x, np.asarray(table["C"], np.float32)


# --------------------------------------------------------- jaxcomp epoch variants
def variant_epochs():
    """Same-maths alternatives to ``_train_epoch``, with the same signature."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxcomp.selection.function import _flatten_weights
    from jaxcomp.selection.training import _loss, _optimizer

    sqrt_half = np.float32(np.sqrt(0.5))
    inv_sqrt_2pi = np.float32(1.0 / np.sqrt(2.0 * np.pi))

    def gelu_with_analytic_derivative(use_erf: bool):
        """Exact GELU whose derivative is written out: Phi(x) + x phi(x) (one exp, no erfc
        re-derivation)."""

        def cdf(x):
            return (
                0.5 * (1.0 + jax.lax.erf(x * sqrt_half))
                if use_erf
                else 0.5 * jax.lax.erfc(-x * sqrt_half)
            )

        @jax.custom_jvp
        def gelu(x):
            return x * cdf(x) if use_erf else jax.nn.gelu(x, approximate=False)

        @gelu.defjvp
        def gelu_jvp(primals, tangents):
            (x,), (dx,) = primals, tangents
            phi_cdf = cdf(x)
            return x * phi_cdf, (phi_cdf + x * inv_sqrt_2pi * jnp.exp(-0.5 * x * x)) * dx

        return gelu

    def manual_loss(precision, activation=None):
        activation = activation or (lambda z: jax.nn.gelu(z, approximate=False))

        def loss(graphdef, weights, features, labels):
            flat = _flatten_weights(weights)
            n_hidden = sum(
                1 for name in flat if name.startswith("hidden.") and name.endswith(".kernel")
            )
            h = features
            for i in range(n_hidden):
                h = activation(
                    jnp.dot(h, flat[f"hidden.{i}.kernel"], precision=precision)
                    + flat[f"hidden.{i}.bias"]
                )
            logits = (jnp.dot(h, flat["head.kernel"], precision=precision) + flat["head.bias"])[
                ..., 0
            ]
            return optax.sigmoid_binary_cross_entropy(logits, labels).mean()

        return loss

    def make(loss_fn, gather_once: bool, unroll: int = 1):
        @partial(
            jax.jit,
            static_argnames=("graphdef", "n_batches", "batch_size", "total_steps", "warmup_steps"),
            donate_argnames=("weights", "opt_state"),
        )
        def epoch(
            graphdef,
            weights,
            opt_state,
            features,
            labels,
            key,
            peak_learning_rate,
            weight_decay,
            *,
            n_batches,
            batch_size,
            total_steps,
            warmup_steps,
        ):
            optimizer = _optimizer(peak_learning_rate, weight_decay, total_steps, warmup_steps)
            order = jax.random.permutation(key, features.shape[0])[: n_batches * batch_size]
            order = order.reshape(n_batches, batch_size)
            if gather_once:
                xs = (features[order], labels[order])
            else:
                xs = order

            def step(carry, x):
                weights, opt_state = carry
                batch_features, batch_labels = x if gather_once else (features[x], labels[x])
                loss, grads = jax.value_and_grad(loss_fn, argnums=1)(
                    graphdef, weights, batch_features, batch_labels
                )
                updates, opt_state = optimizer.update(grads, opt_state, weights)
                return (optax.apply_updates(weights, updates), opt_state), loss

            (weights, opt_state), losses = jax.lax.scan(
                step, (weights, opt_state), xs, unroll=unroll
            )
            return weights, opt_state, losses.mean()

        return epoch

    return {
        "batches gathered once per epoch": make(_loss, gather_once=True),
        "manual MLP, precision=HIGHEST": make(
            manual_loss(jax.lax.Precision.HIGHEST), gather_once=False
        ),
        "GELU (erfc) with analytic derivative": make(
            manual_loss(None, gelu_with_analytic_derivative(use_erf=False)), gather_once=False
        ),
        "GELU via erf with analytic derivative": make(
            manual_loss(None, gelu_with_analytic_derivative(use_erf=True)), gather_once=False
        ),
    }


class JaxRun:
    """One jaxcomp training run (weights, optimiser state, epoch counter) driven like ``_fit``."""

    def __init__(self, epoch_fn, graphdef, weights, features, labels, args, n_batches, batch_size):
        import jax
        import jax.numpy as jnp

        from jaxcomp.selection.training import _optimizer

        self.epoch_fn, self.graphdef = epoch_fn, graphdef
        self.total_steps = n_batches * args.schedule_epochs
        self.warmup_steps = int(round(args.warmup_fraction * self.total_steps))
        optimizer = _optimizer(
            args.learning_rate, args.weight_decay, self.total_steps, self.warmup_steps
        )
        self.weights = jax.tree.map(jnp.copy, weights)
        self.opt_state = optimizer.init(self.weights)
        self.features, self.labels = jnp.asarray(features), jnp.asarray(labels)
        self.key = jax.random.fold_in(jax.random.key(args.seed), 0)  # member 0, as in _fit
        self.lr, self.wd = jnp.float32(args.learning_rate), jnp.float32(args.weight_decay)
        self.n_batches, self.batch_size, self.epoch = n_batches, batch_size, 0

    def state_copy(self):
        import jax
        import jax.numpy as jnp

        return jax.tree.map(jnp.copy, (self.weights, self.opt_state))

    def run_epoch(self, weights=None, opt_state=None, epoch=None) -> tuple[float, float]:
        """One epoch; returns (seconds, mean training loss).  ``float(loss)`` waits for the
        result."""
        import jax

        advance = weights is None
        weights = self.weights if weights is None else weights
        opt_state = self.opt_state if opt_state is None else opt_state
        epoch = self.epoch if epoch is None else epoch
        elapsed, (weights, opt_state, loss) = _common.timed(
            lambda: _block(
                self.epoch_fn(
                    self.graphdef,
                    weights,
                    opt_state,
                    self.features,
                    self.labels,
                    jax.random.fold_in(self.key, epoch),
                    self.lr,
                    self.wd,
                    n_batches=self.n_batches,
                    batch_size=self.batch_size,
                    total_steps=self.total_steps,
                    warmup_steps=self.warmup_steps,
                )
            )
        )
        if advance:
            self.weights, self.opt_state, self.epoch = weights, opt_state, self.epoch + 1
        self.last = (weights, opt_state)
        return elapsed, float(loss)


def _block(result):
    import jax

    return jax.block_until_ready(result)


def step_breakdown(
    graphdef, weights, features, labels, args, batch_size, n_batches, repeats
) -> dict:
    """Seconds per epoch of forward only, forward+backward, and the full AdamW step (Python loop of
    jitted steps)."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxcomp.selection.training import _loss, _optimizer

    total = n_batches * args.schedule_epochs
    optimizer = _optimizer(
        args.learning_rate, args.weight_decay, total, int(round(args.warmup_fraction * total))
    )
    x = jnp.asarray(features[: n_batches * batch_size]).reshape(n_batches, batch_size, -1)
    y = jnp.asarray(labels[: n_batches * batch_size]).reshape(n_batches, batch_size)
    opt_state = optimizer.init(weights)
    forward = jax.jit(lambda w, xb, yb: _loss(graphdef, w, xb, yb))
    grad = jax.jit(lambda w, xb, yb: jax.value_and_grad(_loss, argnums=1)(graphdef, w, xb, yb))

    @jax.jit
    def full(w, s, xb, yb):
        loss, g = jax.value_and_grad(_loss, argnums=1)(graphdef, w, xb, yb)
        updates, s = optimizer.update(g, s, w)
        return optax.apply_updates(w, updates), s, loss

    @jax.jit
    def update_only(g, s, w):
        updates, s = optimizer.update(g, s, w)
        return optax.apply_updates(w, updates), s

    g0 = grad(weights, x[0], y[0])[1]

    def loop(fn):
        def run():
            out = None
            for i in range(n_batches):
                out = fn(i)
            jax.block_until_ready(out)

        run()
        return run

    runs = {
        "forward (loss)": loop(lambda i: forward(weights, x[i], y[i])),
        "forward + backward": loop(lambda i: grad(weights, x[i], y[i])),
        "AdamW update only": loop(lambda i: update_only(g0, opt_state, weights)),
        "full step (grad + AdamW)": loop(lambda i: full(weights, opt_state, x[i], y[i])),
    }
    seconds = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(_common.timed(run)[0])
    return {name: _common.stats(v) for name, v in seconds.items()}


def sweep_flags(args) -> dict:
    child_args = [
        "--jax-only",
        "--n-labels",
        str(args.sweep_labels),
        "--epochs",
        str(args.sweep_epochs),
        "--no-variants",
    ]
    script = Path(__file__).resolve()

    def child(flags: str) -> dict:
        try:
            out = _common.rerun_with_xla_flags(script, flags, child_args)
        except Exception as error:  # noqa: BLE001 - a flag this jaxlib rejects
            return {"error": repr(error)[:300]}
        return {
            "seconds": out["results"]["jaxcomp _train_epoch"]["seconds"],
            "final_loss": out["results"]["jaxcomp _train_epoch"]["losses"][-1],
        }

    print(
        f"\n=== XLA flag sweep (child processes, {args.sweep_labels:,} labels, {args.sweep_epochs} "
        "epochs) ==="
    )
    sweep = {"default (before)": child("")}
    for name, flags in DEFAULT_FLAG_SETS:
        sweep[name] = {"flags": flags, **child(flags)}
    sweep["default (after)"] = child("")
    base = statistics.mean(
        sweep[k]["seconds"]["median"]
        for k in ("default (before)", "default (after)")
        if "seconds" in sweep[k]
    )
    rows = []
    for name, r in sweep.items():
        if "seconds" in r:
            r["speed_vs_default"] = base / r["seconds"]["median"]
            rows.append(
                [
                    name,
                    f"{r['seconds']['median']:.2f}",
                    f"{r['speed_vs_default']:.2f}x",
                    f"{r['final_loss']:.6f}",
                ]
            )
        else:
            rows.append([name, "failed", "-", r["error"][:60]])
    print(_common.table(rows, ["XLA_FLAGS", "s/epoch median", "vs default", "last loss"]))
    return sweep


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a CI smoke run (< 30 s)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--n-labels", type=int, help="training rows (default 245,000; quick 16,384)"
    )
    parser.add_argument(
        "--epochs", type=int, help="timed epochs after the untimed first one (default 3)"
    )
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument(
        "--schedule-epochs",
        type=int,
        default=100,
        help="epochs the warm-up/cosine schedule spans (TrainConfig.epochs)",
    )
    parser.add_argument("--warmup-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", dest="torch", action="store_false")
    parser.add_argument(
        "--variants",
        dest="variants",
        action="store_true",
        default=True,
        help="time same-maths variants of the epoch (default, except with --quick)",
    )
    parser.add_argument("--no-variants", dest="variants", action="store_false")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time forward / backward / optimiser separately",
    )
    parser.add_argument(
        "--jax-only", action="store_true", help="jaxcomp only (used by --sweep-flags)"
    )
    parser.add_argument(
        "--sweep-flags", action="store_true", help="also measure XLA_FLAGS in child processes"
    )
    parser.add_argument("--sweep-labels", type=int, default=100_000)
    parser.add_argument("--sweep-epochs", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_labels = args.n_labels or 16_384
        args.epochs = args.epochs or 1
        if "--variants" not in (argv or sys.argv):
            args.variants = False
        args.sweep_labels, args.sweep_epochs = min(args.sweep_labels, 16_384), 1
    args.n_labels = args.n_labels or 245_000
    args.epochs = args.epochs or 3
    if args.jax_only:
        args.torch = False
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    import jax
    import jax.numpy as jnp

    from jaxcomp.selection.function import _flatten_weights
    from jaxcomp.selection.network import NetworkConfig, init_network
    from jaxcomp.selection.training import _train_epoch

    info = _common.machine_info()
    cores = info["cores"]
    print(
        f"machine: {info['cpu']}, {cores} cores, jax {info['jax']}, load average "
        f"{info['load_average_at_start']}"
        + (f", XLA_FLAGS={info['xla_flags']!r}" if info["xla_flags"] else "")
    )
    features, labels = make_data(args.n_labels, args.seed)
    batch_size = min(args.batch_size, features.shape[0])
    n_batches = features.shape[0] // batch_size
    config = NetworkConfig(3, (args.width, args.width))
    graphdef, weights = init_network(config, args.seed)
    flops_per_row = (
        3 * 2.0 * (3 * args.width + args.width * args.width + args.width)
    )  # fwd + 2x for bwd
    epoch_flops = flops_per_row * n_batches * batch_size
    print(
        f"{args.n_labels:,} labels, {n_batches} batches of {batch_size} per epoch, "
        f"3-{args.width}-{args.width}-1, ~{epoch_flops / 1e9:.0f} GFLOP per epoch (matmuls, "
        "fwd+bwd)"
    )

    runs = {
        "jaxcomp _train_epoch": JaxRun(
            _train_epoch, graphdef, weights, features, labels, args, n_batches, batch_size
        )
    }
    variants = variant_epochs() if args.variants else {}
    for name, fn in variants.items():
        runs[f"variant: {name}"] = JaxRun(
            fn, graphdef, weights, features, labels, args, n_batches, batch_size
        )

    # Same-maths check: every variant's first epoch from the library's initial state and key.
    identical = {}
    reference = runs["jaxcomp _train_epoch"]
    for name, run in runs.items():
        if name == "jaxcomp _train_epoch":
            continue
        ref_w, ref_s = reference.state_copy()
        ref_loss = reference.run_epoch(ref_w, ref_s, epoch=0)[1]
        ref_weights = reference.last[0]
        w, s = run.state_copy()
        loss = run.run_epoch(w, s, epoch=0)[1]
        diff = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(ref_weights), jax.tree.leaves(run.last[0]))
        )
        identical[name] = {
            "max_abs_weight_diff_after_1_epoch": diff,
            "loss_diff": abs(loss - ref_loss),
        }
    if identical:
        print(
            "same-maths check (1 epoch from the same state and key): "
            + ", ".join(
                f"{k}: max|dw|={v['max_abs_weight_diff_after_1_epoch']:.1e}"
                for k, v in identical.items()
            )
        )

    worker = _common.start_torch_worker(cores, required=False) if args.torch else None
    payload = {
        "benchmark": "training",
        "quick": args.quick,
        "machine": info,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "n_batches": n_batches,
        "batch_size": batch_size,
        "epoch_gflop": epoch_flops / 1e9,
        "same_maths_check": identical,
    }
    seconds: dict[str, list[float]] = {}
    losses: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if worker is not None:
                info["torch"] = worker.info
                flat = {k: np.asarray(v) for k, v in _flatten_weights(weights).items()}
                n_hidden = len(config.hidden_widths)
                kernels = [flat[f"hidden.{i}.kernel"] for i in range(n_hidden)] + [
                    flat["head.kernel"]
                ]
                biases = [flat[f"hidden.{i}.bias"] for i in range(n_hidden)] + [flat["head.bias"]]
                data_file = Path(tmp) / "train.npz"
                np.savez(
                    data_file,
                    x=features,
                    y=labels,
                    n_layers=len(kernels),
                    **{f"kernel_{i}": k for i, k in enumerate(kernels)},
                    **{f"bias_{i}": b for i, b in enumerate(biases)},
                )
                total = n_batches * args.schedule_epochs
                worker.request(
                    {
                        "cmd": "train_setup",
                        "data": str(data_file),
                        "seed": args.seed,
                        "learning_rate": args.learning_rate,
                        "weight_decay": args.weight_decay,
                        "batch_size": batch_size,
                        "n_batches": n_batches,
                        "total_steps": total,
                        "warmup_steps": int(round(args.warmup_fraction * total)),
                    }
                )
                print(f"torch {worker.info['torch']} with {worker.info['threads']} threads")

            configs = {name: run.run_epoch for name, run in runs.items()}
            if worker is not None:

                def torch_epoch():
                    reply = worker.request({"cmd": "train_epoch"})
                    return reply["seconds"], reply["loss"]

                configs["torch (AdamW + LambdaLR)"] = torch_epoch
            warmup = {}
            for (
                name,
                run,
            ) in configs.items():  # first epoch: compilation / allocator warm-up, not timed
                warmup[name] = run()
                losses[name] = [warmup[name][1]]
                seconds[name] = []
            print(
                "first (untimed) epoch: "
                + ", ".join(f"{k} {v[0]:.1f} s" for k, v in warmup.items())
            )
            for epoch in range(args.epochs):
                names = list(configs)
                shift = epoch % len(
                    names
                )  # rotate the order each round: no configuration always goes first
                for name in names[shift:] + names[:shift]:
                    elapsed, loss = configs[name]()
                    seconds[name].append(elapsed)
                    losses[name].append(loss)
                print(
                    f"  epoch {epoch + 2}: "
                    + ", ".join(
                        f"{k.split(':')[-1].strip()} {v[-1]:.2f}s" for k, v in seconds.items()
                    )
                    + f" (load average {_common.load_average()})",
                    flush=True,
                )
    finally:
        if worker is not None:
            worker.close()

    results = {}
    for name, values in seconds.items():
        s = _common.stats(values)
        results[name] = {
            "seconds": s,
            "losses": losses[name],
            "first_epoch_seconds": warmup[name][0],
            "gflops_median": epoch_flops / s["median"] / 1e9,
        }
    payload["results"] = results
    rows = [
        [
            name,
            f"{r['seconds']['median']:.2f}",
            f"{r['seconds']['min']:.2f}",
            f"{r['seconds']['max']:.2f}",
            f"{r['first_epoch_seconds']:.1f}",
            f"{r['gflops_median']:.0f}",
            f"{r['losses'][-1]:.5f}",
        ]
        for name, r in results.items()
    ]
    print(
        _common.table(
            rows,
            ["configuration", "s/epoch median", "min", "max", "1st epoch", "GFLOP/s", "last loss"],
        )
    )

    def ratio(fast: str, slow: str) -> dict | None:
        if fast not in seconds or slow not in seconds:
            return None
        a, b = seconds[fast], seconds[slow]
        paired = [y / x for x, y in zip(a, b)]
        return {
            "median_of_medians": statistics.median(b) / statistics.median(a),
            "best_vs_best": min(b) / min(a),
            "paired_min": min(paired),
            "paired_max": max(paired),
        }

    base = "jaxcomp _train_epoch"
    ratios = {"jaxcomp/torch": ratio(base, "torch (AdamW + LambdaLR)")}
    for name in results:
        if name.startswith("variant"):
            ratios[f"{name}/jaxcomp"] = ratio(name, base)
    payload["ratios"] = ratios
    for key, value in ratios.items():
        if value is not None:
            print(
                f"  {key}: {value['median_of_medians']:.2f}x (best/best "
                f"{value['best_vs_best']:.2f}x, "
                f"per-epoch {value['paired_min']:.2f}-{value['paired_max']:.2f}x)"
            )

    if args.breakdown:
        print("\n=== breakdown of the jaxcomp step (Python loop over jitted single steps) ===")
        breakdown = step_breakdown(
            graphdef,
            weights,
            features,
            labels,
            args,
            batch_size,
            n_batches,
            repeats=max(args.epochs, 1),
        )
        payload["breakdown"] = breakdown
        print(
            _common.table(
                [[k, f"{v['median']:.2f}", f"{v['min']:.2f}"] for k, v in breakdown.items()],
                ["per epoch", "s median", "min"],
            )
        )
    if args.sweep_flags:
        payload["xla_flag_sweep"] = sweep_flags(args)

    line = f"\nRATIOS (median over epochs; target jaxcomp/torch >= {TARGET_VS_TORCH}): "
    if ratios["jaxcomp/torch"]:
        line += f"jaxcomp/torch={ratios['jaxcomp/torch']['median_of_medians']:.2f}x"
    else:
        line += "jaxcomp/torch=n/a (no torch)"
    line += f" | jaxcomp {results[base]['seconds']['median']:.2f} s/epoch"
    if "torch (AdamW + LambdaLR)" in results:
        line += f", torch {results['torch (AdamW + LambdaLR)']['seconds']['median']:.2f} s/epoch"
    for key, value in ratios.items():
        if key.startswith("variant") and value:
            line += f" | {key.split(':', 1)[1]}={value['median_of_medians']:.2f}x"
    print(line)
    if args.json:
        _common.write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
