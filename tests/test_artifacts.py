"""Atomic artifacts: complete or absent, and no debris from killed writes."""
from __future__ import annotations

import pytest

from evaluation.core.artifacts import atomic_path, write_text_atomic


def test_a_killed_writes_temporary_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "results" / "set"
    stale = tmp_path / "results" / ".set.ab12cd_9"          # mkdtemp's name for a write of `set`
    (stale / "set").mkdir(parents=True)
    other = tmp_path / "results" / ".set.json.ab12cd_9"     # another artifact's temporary
    other.mkdir()
    write_text_atomic(out, "done")
    assert out.read_text() == "done" and not stale.exists() and other.exists()


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "results" / "a" / "file") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not (tmp_path / "results").exists()
