"""Training progress for a person waiting: epochs, loss, time left."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from skorch.callbacks import Callback

__all__ = ["EpochProgress"]


class EpochProgress(Callback):
    """One line per epoch on stderr: epoch, loss, elapsed and estimated time left.

    Plain text (no terminal control codes), so it reads the same in a log
    file.  The estimate is the mean epoch time so far times the epochs left.

    Parameters
    ----------
    stream : file-like, optional
        Where to write (default: ``sys.stderr`` at the time of writing).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.start_ = time.perf_counter()
        self.first_epoch_ = len(net.history)

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        epoch = len(net.history)
        done = epoch - self.first_epoch_
        elapsed = time.perf_counter() - self.start_
        left = elapsed / max(done, 1) * max(net.max_epochs - done, 0)
        loss = net.history[-1].get("train_loss", float("nan"))
        stream = self.stream or sys.stderr
        print(
            f"  epoch {done}/{net.max_epochs}  loss {loss:.4f}  "
            f"{elapsed:.0f} s elapsed, about {left:.0f} s left",
            file=stream,
            flush=True,
        )
