"""PyTorch baseline worker for the jaxcomp benchmarks (imports torch and numpy only).

Started by ``_common.TorchWorker``; reads one JSON command per line on stdin and
answers one JSON line on stdout.  Arrays arrive and leave as ``.npz`` files.
The models are the idiomatic PyTorch equivalents of jaxcomp's network:
``nn.Sequential(Linear, GELU(), Linear, GELU(), Linear)`` in float32, with
``nn.GELU()`` being the exact erf GELU.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback

import numpy as np
import torch
from torch import nn

STATE: dict = {}


def build_mlp(kernels, biases) -> nn.Sequential:
    """jaxcomp/Flax kernels are (in, out); torch Linear weights are (out, in)."""
    layers: list[nn.Module] = []
    for index, (kernel, bias) in enumerate(zip(kernels, biases)):
        linear = nn.Linear(kernel.shape[0], kernel.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T, dtype=np.float32)))
            linear.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
        layers.append(linear)
        if index < len(kernels) - 1:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


def load_layers(npz) -> tuple[list, list]:
    n_layers = int(npz["n_layers"])
    return [npz[f"kernel_{i}"] for i in range(n_layers)], [
        npz[f"bias_{i}"] for i in range(n_layers)
    ]


# --------------------------------------------------------------------- commands
def hello(msg):
    torch.set_num_threads(int(msg["threads"]))
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
    }


def matmul_peak(msg):
    size, repeats = int(msg.get("size", 4096)), int(msg.get("repeats", 3))
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return {"gflops_best": 2.0 * size**3 / best / 1e9}


def mlp_load(msg):
    with np.load(msg["weights"]) as npz:
        kernels, biases = load_layers(npz)
        STATE["model"] = build_mlp(kernels, biases).eval()
        for name in ("mean", "scale", "lower", "upper"):
            STATE[name] = torch.from_numpy(np.asarray(npz[name], dtype=np.float32))
    with np.load(msg["points"]) as npz:
        STATE["points"] = torch.from_numpy(np.ascontiguousarray(npz["x"], dtype=np.float32))
    return {"n_points": int(STATE["points"].shape[0])}


def _predict(points: torch.Tensor, chunk: int) -> torch.Tensor:
    model, out = STATE["model"], torch.empty(points.shape[0], dtype=torch.float32)
    lower, upper, mean, scale = STATE["lower"], STATE["upper"], STATE["mean"], STATE["scale"]
    with torch.no_grad():
        for start in range(0, points.shape[0], chunk):
            x = points[start : start + chunk]
            features = (torch.clamp(x, lower, upper) - mean) / scale
            out[start : start + chunk] = torch.sigmoid(model(features)[:, 0])
    return out


def mlp_predict(msg):
    n = int(msg["n"])
    p = _predict(STATE["points"][:n], int(msg.get("chunk", 4096)))
    np.savez(msg["out"], p=p.numpy())
    return {"n": n}


def mlp_time(msg):
    chunk = int(msg["chunk"])
    points = STATE["points"][int(msg.get("start", 0)) : msg.get("stop")]
    start = time.perf_counter()
    _predict(points, chunk)
    return {"seconds": time.perf_counter() - start}


def train_setup(msg):
    torch.manual_seed(int(msg["seed"]))
    with np.load(msg["data"]) as npz:
        kernels, biases = load_layers(npz)
        STATE["X"] = torch.from_numpy(np.ascontiguousarray(npz["x"], dtype=np.float32))
        STATE["Y"] = torch.from_numpy(np.ascontiguousarray(npz["y"], dtype=np.float32))
    model = build_mlp(kernels, biases).train()
    total, warmup = int(msg["total_steps"]), int(msg["warmup_steps"])

    def lr_lambda(step: int) -> float:
        # Same as jaxcomp.selection.training._optimizer: linear warm-up, then cosine to 0.
        if step < warmup:
            return step / max(warmup, 1)
        progress = min(max((step - warmup) / max(total - warmup, 1), 0.0), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=float(msg["learning_rate"]), weight_decay=float(msg["weight_decay"])
    )
    STATE.update(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda),
        loss_fn=nn.BCEWithLogitsLoss(),
        batch_size=int(msg["batch_size"]),
        n_batches=int(msg["n_batches"]),
    )
    return {"n_rows": int(STATE["X"].shape[0]), "foreach": "default"}


def train_epoch(msg):
    model, optimizer, scheduler, loss_fn = (
        STATE[k] for k in ("model", "optimizer", "scheduler", "loss_fn")
    )
    X, Y, batch_size, n_batches = STATE["X"], STATE["Y"], STATE["batch_size"], STATE["n_batches"]
    start = time.perf_counter()
    order = torch.randperm(X.shape[0])
    total = torch.zeros(())
    for batch in range(n_batches):
        index = order[batch * batch_size : (batch + 1) * batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(X[index])[:, 0], Y[index])
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.detach()
    mean_loss = float(total) / n_batches
    return {"seconds": time.perf_counter() - start, "loss": mean_loss}


COMMANDS = {
    f.__name__: f
    for f in (hello, matmul_peak, mlp_load, mlp_predict, mlp_time, train_setup, train_epoch)
}


def main() -> None:
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            print(json.dumps({"ok": True}), flush=True)
            return
        try:
            reply = COMMANDS[msg["cmd"]](msg)
        except Exception:  # noqa: BLE001 - reported to the parent
            reply = {"error": traceback.format_exc()}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
