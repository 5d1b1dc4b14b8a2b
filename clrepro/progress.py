"""Progress for long jobs: a tqdm bar on a terminal, periodic plain lines in a log file."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("clrepro")


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)


class Progress:
    """Counts steps; on a TTY draws a bar, otherwise logs a line every `every_s` seconds."""

    def __init__(self, total: int, desc: str, every_s: float = 30.0):
        self.total, self.desc, self.every_s = total, desc, every_s
        self.done = 0
        self.start = self.last = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False, file=sys.stderr)

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if self.bar is not None:
            if self.done > self.total:  # the total was an estimate (the phase trainer's)
                self.total = self.bar.total = self.done
            self.bar.update(n)
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last >= self.every_s:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            if self.done > self.total:  # past an estimated total: no made-up percentage or eta
                log.info("%s: %d batches (more than the %d estimated), %.0f batch/s %s",
                         self.desc, self.done, self.total, rate, note)
                return
            eta = (self.total - self.done) / max(rate, 1e-9)
            log.info("%s: %d/%d batches (%.0f%%), %.0f batch/s, eta %.0fs %s", self.desc,
                     self.done, self.total, 100 * self.done / max(self.total, 1), rate, eta, note)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
