"""Progress bars on a terminal, plain log lines elsewhere, nothing with ``quiet``."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from tqdm import tqdm


class Reporter:
    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = quiet
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
            last = {}

            def update(n=1, **postfix):
                last.update(postfix)

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
