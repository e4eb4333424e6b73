"""The probe cache under concurrent writers (threads, processes) and hostile entries (FIFO, /dev/zero)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from advisor.domain import ProbeResult
from advisor.probes import cache


def _result(i: int) -> ProbeResult:
    return ProbeResult(backend="ollama", model="m:1b", gpu="G", decode_tok_s=float(i), measured_at=f"2025-01-01T00:00:{i % 60:02d}",
                       warnings=["x" * 2000] * 20)  # ~40 KB: a write is many syscalls, a reader can catch one half done


def test_threads_writing_lose_nothing():
    """Every store() lands: no writer's rename takes another's temporary file (they used to share one)."""
    same = cache.make_key("G", "m:1b", "ollama", url="http://x")
    keys = [cache.make_key("G", f"m{i}", "ollama", url="http://x") for i in range(12)]
    barrier = threading.Barrier(len(keys))
    failed = []

    def write(i):
        barrier.wait()
        for j in range(20):
            if cache.store(same, _result(i * 100 + j)) is None:
                failed.append((i, j))
        if cache.store(keys[i], _result(i)) is None:
            failed.append((i, "own"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(keys))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failed == []
    assert cache.load(same).decode_tok_s % 100 == 19  # some thread's last write, whole
    assert [cache.load(k).decode_tok_s for k in keys] == [float(i) for i in range(len(keys))]
    assert not list(cache.cache_dir().glob(".*.tmp"))  # every temporary file was renamed or removed


def test_readers_never_see_a_torn_entry_while_threads_rewrite_it():
    key = cache.make_key("G", "m:1b", "ollama", url="http://x")
    cache.store(key, _result(0))
    stop = threading.Event()
    seen, bad = [], []

    def read():
        while not stop.is_set():
            hit = cache.load(key)
            (seen if hit is not None else bad).append(hit)

    def write(i):
        for j in range(15):
            cache.store(key, _result(i * 100 + j))

    readers = [threading.Thread(target=read) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(60)
    stop.set()
    for t in readers:
        t.join(10)
    assert seen and not bad  # always a whole entry, old or new
    assert all(h.cached and len(h.warnings) == 20 for h in seen)


_WRITER = """
import sys
from advisor.domain import ProbeResult
from advisor.probes import cache
key = cache.make_key("G", "m:1b", "ollama", url="http://x")
for j in range(25):
    r = ProbeResult(backend="ollama", model="m:1b", gpu="G", decode_tok_s=float(sys.argv[1]) * 100 + j,
                    warnings=["y" * 2000] * 20)
    assert cache.store(key, r) is not None
"""


def test_processes_writing_the_same_key_while_this_one_reads():
    key = cache.make_key("G", "m:1b", "ollama", url="http://x")
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(i)], env=env) for i in range(3)]
    torn = 0
    reads = 0
    while any(p.poll() is None for p in procs):
        raw = cache.read_bounded(cache._path(key))
        if raw is not None:
            reads += 1
            torn += cache.load(key) is None
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert torn == 0
    final = cache.load(key)
    assert final is not None and final.decode_tok_s % 100 == 24  # one writer's last entry, whole
    assert not list(cache.cache_dir().glob(".*.tmp"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_as_a_cache_entry_is_skipped_not_waited_on():
    key = cache.make_key("G", "m:1b", "ollama", url="http://x")
    path = cache._path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    t0 = time.monotonic()
    assert cache.load(key) is None and cache.cached_results() == []
    assert time.monotonic() - t0 < 2
    assert cache.store(key, _result(7)) == path and cache.load(key).decode_tok_s == 7.0  # replaced by a real entry


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_and_huge_files_as_entries_are_skipped():
    key = cache.make_key("G", "m:1b", "ollama", url="http://x")
    path = cache._path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/dev/zero", path)
    assert cache.load(key) is None and cache.cached_results() == []
    os.unlink(path)
    with open(path, "wb") as f:
        f.truncate(cache.MAX_ENTRY + 1)  # sparse: big on paper, no disk used
    assert cache.load(key) is None and cache.cached_results() == []


def test_a_stale_temporary_file_of_a_dead_writer_is_swept():
    key = cache.make_key("G", "m:1b", "ollama", url="http://x")
    cache.store(key, _result(1))
    stale = cache.cache_dir() / ".old.1.2.abc.tmp"
    stale.write_text("{")
    os.utime(stale, (time.time() - 2 * cache.STALE_TMP_S,) * 2)
    fresh = cache.cache_dir() / ".live.1.2.abc.tmp"
    fresh.write_text("{")
    cache.store(key, _result(2))
    assert not stale.exists() and fresh.exists()
