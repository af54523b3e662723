"""Damaged `.ns6` and `.nev` files through `spikevae sort`: each case ends in a result, a
one-line refusal, or (a failure of spikevae) a traceback or a silent loss.

A small recording (3 electrodes, 2 s in two segments) and the `.nev` a Blackrock system would
have cut from it are damaged at random, each case one of: header bytes flipped, zeroed or set
to 0xff; the file cut short; packet bytes overwritten (timestamps, electrode ids, samples).
A result counts as a silent loss when it holds fewer spikes, electrodes or seconds than the
intact file's result and said nothing (no warning in run.json). Each damaged `.nev` lies beside
an intact copy of its `.ns6`, as in a session's folder. Prints the counts per format.

    python benchmarks/fuzz_inputs.py --cases 150 --seed 7
"""
from __future__ import annotations

import argparse
import json
import tempfile
import traceback
from pathlib import Path

import numpy as np

import spikevae
from spikevae.simulators.simulation import SimulationConfig, cut_online, simulate

HEADERS = {"ns6": 314 + 66 * 3, "nev": 336 + 32 * 9}


def damage(data: bytes, header: int, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    op = rng.integers(5)
    if op == 0:
        for i in rng.integers(0, header, rng.integers(1, 4)):
            b[i] ^= int(rng.integers(1, 256))
    elif op == 1:
        i, k = int(rng.integers(0, header - 8)), int(rng.choice([1, 2, 4, 8]))
        b[i:i + k] = bytes(k) if rng.random() < 0.5 else b"\xff" * k
    elif op == 2:
        b = b[:int(rng.integers(0, len(b)))]
    else:  # inside the data: a run of bytes overwritten
        i, k = int(rng.integers(header, len(b) - 8)), int(rng.integers(1, 9))
        b[i:i + k] = rng.integers(0, 256, k, dtype=np.uint8).tobytes()
    return bytes(b)


def summary(out: Path) -> tuple[int, int, float, list]:
    run = json.loads((out / "run.json").read_text())
    return (run["counts"]["detected"], len(run["input"]["electrodes"]), run["input"]["duration_s"],
            run.get("warnings", []) + list(run.get("skipped_electrodes", {}).values()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=150, help="per format")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    cfg = spikevae.SortConfig(features="pca", workers=1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        simulate(tmp / "intact.ns6", SimulationConfig(n_electrodes=3, duration_s=2.0, n_segments=2, pause_s=0.5,
                                                      seed=1))
        cut_online(tmp / "intact.ns6", tmp / "intact.nev")
        for kind in ("ns6", "nev"):
            intact = tmp / f"intact.{kind}"
            spikevae.sort(intact, cfg, out=tmp / f"intact-{kind}")
            ref = summary(tmp / f"intact-{kind}")
            rng = np.random.default_rng(args.seed + (kind == "nev"))
            counts = {"result, as intact": 0, "result, smaller, said": 0, "refused in one line": 0,
                      "traceback": 0, "silent loss": 0}
            for case in range(args.cases):
                path, out = tmp / f"case{case}.{kind}", tmp / f"out{case}-{kind}"
                path.write_bytes(damage(intact.read_bytes(), HEADERS[kind], rng))
                if kind == "nev":  # in its session's folder, beside the recording it was cut from
                    path.with_suffix(".ns6").write_bytes((tmp / "intact.ns6").read_bytes())
                try:
                    spikevae.sort(path, cfg, out=out)
                except spikevae.SpikevaeError as exc:
                    counts["refused in one line" if "\n" not in str(exc) else "traceback"] += 1
                    continue
                except Exception:  # noqa: BLE001 - what this script counts
                    counts["traceback"] += 1
                    print(f"{kind} case {case}: {traceback.format_exc(limit=2).splitlines()[-1]}")
                    continue
                got = summary(out)
                smaller = got[0] < ref[0] or got[1] < ref[1] or got[2] < ref[2] - 1e-6
                said = len(got[3]) > len(ref[3])
                key = ("result, smaller, said" if said else "silent loss") if smaller else "result, as intact"
                counts[key] += 1
                if key == "silent loss":
                    print(f"{kind} case {case}: {got[0]} spikes, {got[1]} electrodes, {got[2]:.2f} s against "
                          f"{ref[0]}, {ref[1]}, {ref[2]:.2f} s, nothing said")
            print(f"{kind}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)


if __name__ == "__main__":
    main()
