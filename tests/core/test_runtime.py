"""The long-running commands' garbage-collector settings."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from newsletter.runtime import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restore_gc")
def test_tune_gc_collects_less_often_and_freezes_only_when_asked() -> None:
    gc.unfreeze()
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS and GC_THRESHOLDS[0] > 700
    assert gc.get_freeze_count() == 0  # a command that may run inside another program
    tune_gc(freeze=True)
    assert gc.get_freeze_count() > 1000  # the modules and everything built so far
