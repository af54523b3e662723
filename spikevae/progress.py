"""Progress bars on a terminal; elsewhere (a SLURM log, a pipe) plain lines at the start,
every ``interval_s`` while a step runs and at its end; nothing with ``quiet``."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from tqdm import tqdm


class Reporter:
    def __init__(self, quiet: bool = False, stream=None, interval_s: float = 30.0):
        self.quiet = quiet
        self.interval_s = interval_s
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def info(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=self.stream, flush=True)

    def warn(self, msg: str) -> None:
        print(f"warning: {msg}", file=self.stream, flush=True)

    @contextmanager
    def bar(self, desc: str, total: float, unit: str = "it", scale: float = 1.0):
        """Yields ``update(n, **postfix)``. ``total`` is in shown units; ``scale`` converts the
        counted ``n`` into them (samples → seconds, say)."""
        t0 = time.perf_counter()
        if self.quiet or not self.tty:
            last, done, said = {}, [0.0], [t0]

            def update(n=1, **postfix):
                last.update(postfix)
                done[0] += n * scale
                now = time.perf_counter()
                if now - said[0] >= self.interval_s:
                    said[0] = now
                    share = done[0] / total if total else 0.0
                    eta = f", about {(now - t0) * (1 - share) / share:.0f} s left" if 0 < share < 1 else ""
                    extra = " ".join(f"{k}={v:.4g}" for k, v in last.items())
                    self.info(f"{desc}: {done[0]:.4g}/{total:.4g} {unit} ({share:.0%}) after {now - t0:.0f} s"
                              f"{eta} {extra}".rstrip())

            self.info(f"{desc} ...")
            yield update
            extra = " ".join(f"{k}={v:.4g}" for k, v in last.items())
            self.info(f"{desc}: done in {time.perf_counter() - t0:.1f} s {extra}".rstrip())
            return
        with tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=self.stream,
                  dynamic_ncols=True) as pb:
            def update(n=1, **postfix):
                pb.update(n * scale)
                if postfix:
                    pb.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            yield update
