"""β-VAE training and encoding time by PyTorch thread count, on idle cores and beside busy
processes (a shared lab machine, or ``batch --jobs`` sorting sessions side by side).

Trains the default network (the default band's settings: 180 steps of 512) on ``max_train``
waveforms and encodes 600 000, once per thread count, first alone, then with ``--busy``
processes spinning on other cores; each measurement in a fresh process, so that thread pools
start as a sort's do.

    python benchmarks/training_threads.py --threads 1 2 --busy 1
"""
from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = """
import time, numpy as np, torch
from spikevae.config import SortConfig
from spikevae.sorting.train import cpu_threads, train
cfg = SortConfig().vae
x = np.random.default_rng(0).standard_normal((cfg.max_train - cfg.max_train // 10, cfg.n_samples)).astype(np.float32)
with cpu_threads({threads}):
    t = time.perf_counter()
    model = train(x, cfg, torch.device("cpu"))
    trained = time.perf_counter() - t
    y = torch.as_tensor(np.random.default_rng(1).standard_normal((600_000, cfg.n_samples)).astype(np.float32))
    t = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(y), 4096):
            model.net.encoder(y[i:i + 4096])
    print(trained, time.perf_counter() - t)
"""


def measure(threads: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD.format(threads=threads)], capture_output=True, text=True,
                         check=True)
    train_s, encode_s = map(float, out.stdout.split())
    return train_s, encode_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--busy", type=int, default=1, help="processes spinning beside the contended runs")
    args = ap.parse_args()
    for busy in (0, args.busy):
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            for n in args.threads:
                train_s, encode_s = measure(n)
                print(f"{busy} busy process(es), {n} thread(s): train {train_s:5.1f} s, encode 600k {encode_s:4.1f} s",
                      flush=True)
        finally:
            for p in spinners:
                p.kill()


if __name__ == "__main__":
    main()
