import queue
import threading
import time

from scraper.pipeline.workers import Job, Worker, feed_worker
from scraper.records import ErrorKind
from tests.pool_jobs import misbehave

END = object()


def run(items: list[str], time_limit_s: float = 30.0) -> tuple[list[tuple], Worker]:
    worker = Worker(Job(misbehave, None), "test-worker")
    worker.start()
    inbox: queue.Queue = queue.Queue()
    for item in items:
        inbox.put(item)
    inbox.put(END)
    out: list[tuple] = []
    try:
        feed_worker(
            worker,
            inbox,
            lambda i, r, e: out.append((i, r, e)),
            time_limit_s,
            threading.Event(),
            END,
        )
    finally:
        worker.stop()
    return out, worker


def test_items_come_back_in_order() -> None:
    out, worker = run(["a", "b", "c"])
    assert [(i, r, e) for i, r, e in out] == [("a", "A", None), ("b", "B", None), ("c", "C", None)]
    assert worker.replaced == 0


def test_a_killed_worker_fails_only_its_item_and_is_replaced() -> None:
    out, worker = run(["a", "die", "b", "c"])
    assert [i for i, _, _ in out] == ["a", "die", "b", "c"]
    failed = {i: e for i, _, e in out if e is not None}
    assert list(failed) == ["die"]
    assert failed["die"].kind is ErrorKind.PARSE and "SIGKILL" in failed["die"].message
    assert [r for i, r, _ in out if i != "die"] == ["A", "B", "C"]
    assert worker.replaced == 1


def test_a_stuck_item_times_out_and_its_worker_is_replaced() -> None:
    started = time.monotonic()
    out, worker = run(["a", "hang", "b"], time_limit_s=1.0)
    assert time.monotonic() - started < 15
    errors = {i: e for i, _, e in out if e is not None}
    assert list(errors) == ["hang"] and errors["hang"].kind is ErrorKind.PARSE_TIMEOUT
    assert [r for i, r, _ in out if i != "hang"] == ["A", "B"]
    assert worker.replaced == 1


def test_an_exception_is_an_internal_error_and_the_worker_lives_on() -> None:
    out, worker = run(["raise", "a"])
    assert out[0][2].kind is ErrorKind.INTERNAL and "bad item" in out[0][2].message
    assert out[1][1] == "A" and worker.replaced == 0


def test_a_worker_killed_while_idle_costs_no_item(tmp_path) -> None:
    worker = Worker(Job(misbehave, None), "idle-worker")
    worker.start()
    inbox: queue.Queue = queue.Queue()
    inbox.put("a")
    out: list[tuple] = []
    thread = threading.Thread(
        target=feed_worker,
        args=(worker, inbox, lambda i, r, e: out.append((i, r, e)), 30.0, threading.Event(), END),
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not out and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.process.kill()
    worker.process.join()
    inbox.put("b")
    inbox.put(END)
    thread.join(30)
    worker.stop()
    assert [(i, r, e) for i, r, e in out] == [("a", "A", None), ("b", "B", None)]


def test_abort_returns_promptly() -> None:
    worker = Worker(Job(misbehave, None), "abort-worker")
    worker.start()
    inbox: queue.Queue = queue.Queue()
    inbox.put("hang")
    abort = threading.Event()
    thread = threading.Thread(
        target=feed_worker, args=(worker, inbox, lambda *a: None, 60.0, abort, END)
    )
    thread.start()
    time.sleep(0.5)
    abort.set()
    thread.join(5)
    assert not thread.is_alive()
    worker.stop(kill=True)
