"""The batcher alone (plain asyncio, no HTTP): batch formation, option groups, withdrawal, failures, shutdown.

``translate`` here is a recording function (text -> its upper case), so every check is exact: which texts
went into which batch, with which options, and that each caller got its own result back.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from transformer import DecodeOptions
from transformer.serve.batcher import Batcher, QueueFull, ShuttingDown

BEAM4 = DecodeOptions()
BEAM2 = DecodeOptions(beam_size=2, n_best=2, length_penalty=0.6)


class Recorder:
    """translate(texts, options) -> [text.upper()]; records (texts, options, thread name) per call."""

    def __init__(self, gate: threading.Event | None = None, fail_on: str | None = None) -> None:
        self.calls: list[tuple[list[str], DecodeOptions, str]] = []
        self.gate, self.fail_on = gate, fail_on

    def __call__(self, texts: list[str], options: DecodeOptions) -> list[str]:
        self.calls.append((list(texts), options, threading.current_thread().name))
        if self.gate is not None:
            assert self.gate.wait(timeout=10)
        if self.fail_on is not None and self.fail_on in texts:
            raise RuntimeError(f"cannot translate {self.fail_on!r}")
        return [t.upper() for t in texts]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


async def started(translate, max_batch_size=8, max_wait_s=0.05, max_queue=64) -> Batcher:
    batcher = Batcher(translate, max_batch_size=max_batch_size, max_wait_s=max_wait_s, max_queue=max_queue)
    await batcher.start()
    return batcher


def test_concurrent_submissions_share_a_batch_and_get_their_own_results():
    async def main():
        recorder = Recorder()
        batcher = await started(recorder)
        results = await asyncio.gather(*(batcher.submit([f"t{i}"], BEAM4) for i in range(5)))
        await batcher.stop()
        return recorder, results, batcher.stats

    recorder, results, stats = run(main())
    assert results == [[f"T{i}"] for i in range(5)]
    assert [c[0] for c in recorder.calls] == [[f"t{i}" for i in range(5)]]
    assert recorder.calls[0][2].startswith("translate")  # off the event loop, in the worker thread
    assert (stats.requests, stats.texts, stats.batches, stats.largest_batch) == (5, 5, 1, 5)


def test_batches_hold_at_most_max_batch_size_texts_in_arrival_order():
    async def main():
        recorder = Recorder()
        batcher = await started(recorder, max_batch_size=3, max_wait_s=0.2)
        results = await asyncio.gather(
            batcher.submit(["a", "b"], BEAM4), batcher.submit(["c", "d", "e", "f", "g"], BEAM4)
        )
        await batcher.stop()
        return recorder, results

    recorder, results = run(main())
    assert results == [["A", "B"], ["C", "D", "E", "F", "G"]]
    assert [c[0] for c in recorder.calls] == [["a", "b", "c"], ["d", "e", "f"], ["g"]]


def test_full_batch_does_not_wait_for_max_wait():
    async def main():
        batcher = await started(Recorder(), max_batch_size=4, max_wait_s=30.0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await batcher.submit(["a", "b", "c", "d"], BEAM4)
        elapsed = loop.time() - start
        await batcher.stop()
        return elapsed

    assert run(main()) < 5.0  # a full batch goes at once, not after max_wait (30 s)


def test_texts_with_different_options_are_decoded_separately():
    async def main():
        recorder = Recorder()
        batcher = await started(recorder)
        results = await asyncio.gather(
            batcher.submit(["a"], BEAM4),
            batcher.submit(["b"], BEAM2),
            batcher.submit(["c"], BEAM4),
            batcher.submit(["d"], BEAM2),
        )
        await batcher.stop()
        return recorder, results

    recorder, results = run(main())
    assert results == [["A"], ["B"], ["C"], ["D"]]
    assert [(c[0], c[1]) for c in recorder.calls] == [(["a", "c"], BEAM4), (["b", "d"], BEAM2)]


def test_full_queue_refuses_at_once_and_withdrawn_texts_are_never_decoded():
    async def main():
        gate = threading.Event()
        recorder = Recorder(gate)
        batcher = await started(recorder, max_batch_size=1, max_wait_s=0.0, max_queue=2)
        first = asyncio.create_task(batcher.submit(["busy"], BEAM4))
        while batcher.in_flight == 0:
            await asyncio.sleep(0.001)
        waiting = asyncio.create_task(batcher.submit(["x", "y"], BEAM4))
        await asyncio.sleep(0.01)
        assert batcher.queue_depth == 2
        with pytest.raises(QueueFull, match="2 texts are waiting and this request adds 1, more than the limit of 2"):
            await batcher.submit(["z"], BEAM4)
        waiting.cancel()  # e.g. its request timed out: its texts leave the queue at once
        await asyncio.gather(waiting, return_exceptions=True)
        assert batcher.queue_depth == 0
        later = asyncio.create_task(batcher.submit(["later"], BEAM4))
        await asyncio.sleep(0.01)
        gate.set()
        out = await first, await later
        await batcher.stop()
        return recorder, out, batcher.stats

    recorder, out, stats = run(main())
    assert out == (["BUSY"], ["LATER"])
    assert [c[0] for c in recorder.calls] == [["busy"], ["later"]]
    assert stats.rejected == 1


def test_a_failing_batch_fails_its_requests_and_the_batcher_goes_on():
    async def main():
        batcher = await started(Recorder(fail_on="bad"))
        outcomes = await asyncio.gather(
            batcher.submit(["good", "bad"], BEAM4), batcher.submit(["fine"], BEAM4), return_exceptions=True
        )
        after = await batcher.submit(["next"], BEAM4)
        await batcher.stop()
        return outcomes, after, batcher.stats

    outcomes, after, stats = run(main())
    assert all(isinstance(o, RuntimeError) and "cannot translate 'bad'" in str(o) for o in outcomes)
    assert after == ["NEXT"]
    assert stats.failed_batches == 1


def test_stop_fails_waiting_and_decoding_requests():
    async def main():
        gate = threading.Event()
        batcher = await started(Recorder(gate), max_batch_size=1, max_wait_s=0.0)
        decoding = asyncio.create_task(batcher.submit(["a"], BEAM4))
        while batcher.in_flight == 0:
            await asyncio.sleep(0.001)
        waiting = asyncio.create_task(batcher.submit(["b"], BEAM4))
        await asyncio.sleep(0.01)
        await batcher.stop()
        gate.set()
        outcomes = await asyncio.gather(decoding, waiting, return_exceptions=True)
        with pytest.raises(ShuttingDown):
            await batcher.submit(["c"], BEAM4)
        return outcomes

    assert all(isinstance(o, ShuttingDown) for o in run(main()))


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_batch_size=0"):
        Batcher(Recorder(), max_batch_size=0, max_wait_s=0.01, max_queue=4)
