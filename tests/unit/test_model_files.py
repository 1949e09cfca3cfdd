"""Cached model files: made read-only, symbolic links dropped, hard-linked into a
container's directory (no Docker, no registry)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from modelbus_worker.images.model_files import link_tree, make_read_only_tree


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_cached_files_are_read_only_and_links_removed(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret"
    secret.write_text("s")
    secret.chmod(0o600)
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "MLmodel").write_text("m")
    (model / "MLmodel").chmod(0o600)
    (model / "sub" / "w.bin").write_bytes(b"w")
    (model / "sub").chmod(0o700)
    (model / "leak").symlink_to(secret)
    (model / "dirleak").symlink_to(tmp_path)
    make_read_only_tree(model)
    assert mode(model) == 0o755 and mode(model / "sub") == 0o755
    assert mode(model / "MLmodel") == 0o644 and mode(model / "sub" / "w.bin") == 0o644
    assert not (model / "leak").exists() and not (model / "dirleak").is_symlink()
    assert mode(secret) == 0o600  # a link's target is never touched


def test_link_tree_hard_links_files_into_a_new_directory(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "MLmodel").write_text("m")
    (model / "sub" / "w.bin").write_bytes(b"w")
    make_read_only_tree(model)
    target = tmp_path / "sock" / "model"
    target.parent.mkdir()
    link_tree(model, target)
    assert (target / "MLmodel").read_text() == "m"
    assert os.path.samefile(target / "sub" / "w.bin", model / "sub" / "w.bin")
    assert mode(target) == 0o755 and mode(target / "sub") == 0o755
    assert mode(target / "MLmodel") == 0o644
    with pytest.raises(FileExistsError):  # never written into something already there
        link_tree(model, target)
