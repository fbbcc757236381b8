"""Progress of a long pass over batches: tqdm's bar, plus one logged line with the time left after the first batches.

The bar alone is easy to miss (it is redrawn in place, and a run's ``train.log`` never holds it); the logged estimate
is in the console and in the log. It is measured from the end of the first batch, so loader start-up and a
``torch.compile`` of the network (both paid by the first batch) do not inflate it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from time import monotonic
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)
T = TypeVar("T")

ESTIMATE_AFTER = 3  # batches timed (after the first) before the estimate is logged


def with_progress(batches: Iterable[T], desc: str, total: int | None = None, unit: str = "batch") -> Iterator[T]:
    """Yield ``batches`` with a progress bar; after batch ``1 + ESTIMATE_AFTER`` of a pass that has more, log
    ``<desc>: about <time> left (<n> of <total> batches to go, <s> s per batch)``."""
    total = total if total is not None else (len(batches) if hasattr(batches, "__len__") else None)
    start = None
    for index, batch in enumerate(tqdm(batches, desc=desc, unit=unit, total=total)):
        yield batch  # the code below runs once the caller has processed this batch
        if index == 0:
            start = monotonic()
        elif index == ESTIMATE_AFTER and total is not None and total > index + 1:
            per_batch = (monotonic() - start) / ESTIMATE_AFTER
            left = total - index - 1
            log.info("%s: about %s left (%d of %d batches to go, %.1f s per batch)", desc, duration(per_batch * left),
                     left, total, per_batch)


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``1 h 05 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
