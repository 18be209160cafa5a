"""``engine.memory.trim_heap``: the C heap's free pages go back to the system."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.memory import _malloc_trim, trim_heap

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _malloc_trim() is None,
    reason="glibc's malloc_trim and /proc/self/status: Linux with glibc only",
)


def _anonymous_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/self/status")


def test_the_free_pages_under_a_block_in_use_go_back_to_the_system() -> None:
    """1,500 blocks of 64 KiB (bytes objects above 512 bytes live in the C heap; below glibc's
    mmap threshold, in its heap), each followed by a small one kept: freed, the big ones leave
    holes that glibc does not give back by itself; the trim gives back their whole pages."""
    pairs = [(bytes(65_536), bytes(600)) for _ in range(1_500)]  # ~94 MiB touched (zeroed)
    kept = [small for _, small in pairs]
    held = _anonymous_kib()
    del pairs
    assert trim_heap() is True
    assert held - _anonymous_kib() > 60 * 1024  # of ~94 MiB freed, most pages given back
    assert len(kept) == 1_500
