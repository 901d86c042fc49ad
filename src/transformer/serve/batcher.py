"""Dynamic batching: texts from concurrent requests are decoded together, off the event loop.

Requests put one job per text into a bounded queue and await their futures. One background task
takes the oldest job, waits at most ``max_wait_s`` (counted from when that job arrived) for more
jobs with the same decoding options, up to ``max_batch_size`` texts, and hands the batch to a single
worker thread. While the thread decodes, new jobs queue up and form the next batch, so the batch
size grows with the load by itself. Nothing here imports FastAPI: the batcher is plain asyncio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# (texts, options) -> one n-best list per text, in order; runs in the worker thread. Texts share a batch only
# when their options are equal (the service's are ``DecodeOptions``).
TranslateFn = Callable[[list[str], Hashable], Sequence[Any]]


class QueueFull(Exception):
    """The queue cannot take the texts of a request; the client should retry later."""


class ShuttingDown(Exception):
    """The batcher stopped before the texts were decoded."""


@dataclass
class _Job:
    text: str
    options: Hashable
    future: asyncio.Future
    arrived: float  # loop.time()


@dataclass
class BatcherStats:
    """Counters since start, for /health."""

    requests: int = 0
    texts: int = 0  # texts decoded
    batches: int = 0  # calls of the translate function
    largest_batch: int = 0
    rejected: int = 0  # requests refused because the queue was full
    failed_batches: int = 0  # batches whose translate call raised
    batch_sizes: collections.Counter = field(default_factory=collections.Counter)


class Batcher:
    """Gathers texts into batches for ``translate``, which runs in one worker thread.

    Args:
        translate: decodes a list of texts with the given options (called in the worker thread).
        max_batch_size: most texts per translate call.
        max_wait_s: longest a text waits for others to join its batch.
        max_queue: most texts waiting (not yet decoding); ``submit`` raises ``QueueFull`` beyond it.
    """

    def __init__(self, translate: TranslateFn, max_batch_size: int, max_wait_s: float, max_queue: int) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError(f"bad batcher limits: {max_batch_size=}, {max_wait_s=}, {max_queue=}")
        self.translate = translate
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.stats = BatcherStats()
        self._pending: collections.deque[_Job] = collections.deque()
        self._decoding: list[_Job] = []
        self._wake: asyncio.Event | None = None  # jobs are pending
        self._full: asyncio.Event | None = None  # a whole batch is pending
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queue_depth(self) -> int:
        """Texts waiting for a batch."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Texts being decoded now."""
        return len(self._decoding)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the background task (call from the event loop that will submit)."""
        self._wake, self._full = asyncio.Event(), asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="translate")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Stop the background task; requests still waiting fail with ``ShuttingDown``."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in [*self._pending, *self._decoding]:
            if not job.future.done():
                job.future.set_exception(ShuttingDown("the server is shutting down"))
        self._pending.clear()
        self._decoding = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def submit(self, texts: Sequence[str], options: Hashable) -> list[Any]:
        """Queue ``texts`` and wait for their translations (one result per text, in order).

        Raises ``QueueFull`` at once if the queue cannot take them all, ``ShuttingDown`` if the batcher
        is not running, and whatever ``translate`` raised for their batch. Cancelling the call (e.g.
        a timeout around it) withdraws the texts that are still waiting.
        """
        if not self.running:
            raise ShuttingDown("the translation worker is not running")
        if len(self._pending) + len(texts) > self.max_queue:
            self.stats.rejected += 1
            raise QueueFull(
                f"the queue is full: {len(self._pending)} texts are waiting and this request adds {len(texts)}, "
                f"more than the limit of {self.max_queue}"
            )
        loop = asyncio.get_running_loop()
        jobs = [_Job(t, options, loop.create_future(), loop.time()) for t in texts]
        self._pending.extend(jobs)
        self.stats.requests += 1
        assert self._wake is not None and self._full is not None
        self._wake.set()
        if len(self._pending) >= self.max_batch_size:
            self._full.set()
        try:
            # return_exceptions: every future's exception is retrieved, so none is logged as lost.
            results = await asyncio.gather(*(job.future for job in jobs), return_exceptions=True)
        except asyncio.CancelledError:  # timed out or abandoned: free the queue slots now, not at the next batch
            self._drop_withdrawn()
            raise
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def _run(self) -> None:
        assert self._wake is not None and self._full is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._drop_withdrawn()
            if not self._pending:
                self._wake.clear()
                continue
            # The oldest text has waited since it arrived; wait the rest of max_wait for company.
            remaining = self._pending[0].arrived + self.max_wait_s - loop.time()
            if remaining > 0 and len(self._pending) < self.max_batch_size:
                self._full.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), remaining)
                self._drop_withdrawn()
            batch = self._take_batch()
            if len(self._pending) < self.max_batch_size:
                self._full.clear()
            if not self._pending:
                self._wake.clear()
            if batch:
                await self._decode(batch, loop)

    def _drop_withdrawn(self) -> None:
        """Forget jobs whose request gave up (timed out or was cancelled)."""
        if any(job.future.done() for job in self._pending):
            self._pending = collections.deque(job for job in self._pending if not job.future.done())

    def _take_batch(self) -> list[_Job]:
        """The oldest job and up to max_batch_size - 1 later jobs with the same options, in order."""
        if not self._pending:
            return []
        options = self._pending[0].options
        batch: list[_Job] = []
        rest: collections.deque[_Job] = collections.deque()
        for job in self._pending:
            if job.options == options and len(batch) < self.max_batch_size:
                batch.append(job)
            else:
                rest.append(job)
        self._pending = rest
        return batch

    async def _decode(self, batch: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        self._decoding = batch
        texts = [job.text for job in batch]
        try:
            results = await loop.run_in_executor(self._executor, self.translate, texts, batch[0].options)
            if len(results) != len(batch):
                raise RuntimeError(f"translate returned {len(results)} results for {len(batch)} texts")
        except asyncio.CancelledError:  # stop() during a batch: its requests must not wait for a timeout
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(ShuttingDown("the server is shutting down"))
            raise
        except Exception as exc:  # the server must outlive any failure of the model code
            log.exception("translating a batch of %d texts failed", len(batch))
            self.stats.failed_batches += 1
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
        else:
            for job, result in zip(batch, results):
                if not job.future.done():  # its request may have timed out meanwhile
                    job.future.set_result(result)
            self.stats.texts += len(batch)
        finally:
            self._decoding = []
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        self.stats.batch_sizes[len(batch)] += 1
