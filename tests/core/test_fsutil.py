"""The folder hash that lineage and the step cache share, and removing a stale output safely."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolkit.core.fsutil import remove_inside, tree_sha256
from toolkit.core.lineage import fingerprint


def _folder(root: Path) -> Path:
    (root / "part").mkdir(parents=True)
    (root / "MLmodel").write_text("flavor: sklearn\n")
    (root / "part" / "data.bin").write_bytes(b"\x00\x01")
    return root


def test_tree_hash_covers_names_and_bytes_only(tmp_path: Path) -> None:
    a, b = _folder(tmp_path / "a"), _folder(tmp_path / "b")
    assert tree_sha256(a) == tree_sha256(b) == fingerprint(a)["sha256"]
    # Litter (checkpoints, sidecars) and empty folders are not content.
    (b / ".ipynb_checkpoints").mkdir()
    (b / ".ipynb_checkpoints" / "x.txt").write_text("x")
    (b / "part" / ".data.bin.crc").write_text("crc")
    (b / "empty").mkdir()
    assert tree_sha256(b) == tree_sha256(a)
    (b / "part" / "data.bin").write_bytes(b"\x00\x02")
    assert tree_sha256(b) != tree_sha256(a)
    (b / "part" / "data.bin").write_bytes(b"\x00\x01")
    (b / "part" / "data.bin").rename(b / "part" / "renamed.bin")
    assert tree_sha256(b) != tree_sha256(a)


def test_tree_hash_does_not_follow_links_out_of_the_tree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _folder(outside)
    root = _folder(tmp_path / "root")
    os.symlink(outside, root / "linked_folder")
    os.symlink(outside / "MLmodel", root / "linked_file")
    before = tree_sha256(root)
    (outside / "MLmodel").write_text("changed\n")  # the link is its target's path, not its bytes
    assert tree_sha256(root) == before
    os.symlink(root, root / "loop")  # a loop is one more link, not an endless walk
    assert tree_sha256(root) != before


def test_remove_inside_removes_folders_whole_and_nothing_outside(tmp_path: Path) -> None:
    data = tmp_path / "run" / "data"
    model = _folder(data / "model")
    outside = _folder(tmp_path / "outside")
    os.symlink(outside, data / "link")
    remove_inside(data / "link", data)  # the link goes, not what it points at
    assert not os.path.lexists(data / "link") and (outside / "MLmodel").exists()
    remove_inside(model, data)
    assert not model.exists() and data.is_dir()
    remove_inside(data / "never_written", data)  # nothing there: nothing to do
    for bad in (data, tmp_path / "run" / "summary.json", data / ".."):
        with pytest.raises(ValueError, match="refusing to remove"):
            remove_inside(bad, data)
    assert data.is_dir()
