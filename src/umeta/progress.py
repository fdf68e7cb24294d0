"""Progress bars on stderr: a tqdm bar on a terminal, plain lines in a log.

Every long loop of the package (meta-training, evaluation, feature extraction, fine-tuning,
CACTUs' partitions) shows its progress through :func:`progress_bar`. On a terminal (or in a
notebook) it is tqdm's live bar with its rate and ETA. When stderr is a file or a pipe (a batch
job's log) a live bar would write a carriage return per redraw, so the same bar is written as
one plain line every `LOG_INTERVAL_S` seconds and once at the end, with no carriage returns.
"""

from __future__ import annotations

import sys
from typing import IO

from tqdm import tqdm as plain_tqdm
from tqdm.autonotebook import tqdm as auto_tqdm

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL_S = 30.0


class _Lines:
    """A file for tqdm that writes each redraw of the bar as one plain line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(total: int | None = None, *, desc: str, unit: str = "it",
                 enabled: bool = True, initial: int = 0, stream: IO[str] | None = None,
                 **options) -> plain_tqdm:
    """A tqdm bar for ``total`` items on ``stream`` (default stderr); ``enabled=False`` gives a
    bar that shows nothing (its methods still work). ``options`` go to tqdm (e.g.
    ``unit_scale``)."""
    stream = sys.stderr if stream is None else stream
    # tqdm.autonotebook is tqdm's notebook widget inside a notebook, else the plain bar
    live = auto_tqdm is not plain_tqdm or (hasattr(stream, "isatty") and stream.isatty())
    common = dict(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled,
                  **options)
    if live:
        return auto_tqdm(file=stream, dynamic_ncols=True, **common)
    return plain_tqdm(file=_Lines(stream), mininterval=LOG_INTERVAL_S, ncols=100, **common)


__all__ = ["LOG_INTERVAL_S", "progress_bar"]
