"""Atomic writes: all or nothing, with the permissions of any other new file."""

from __future__ import annotations

import os

import pytest

from keras_repro.files import UnsafePath, atomic_write, path_inside, staging_dir


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_finished_file_is_readable_by_others(tmp_path, umask_022):
    with atomic_write(tmp_path / "out.txt") as handle:
        handle.write("done")
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
    assert staging_dir(tmp_path / "folder").stat().st_mode & 0o777 == 0o755


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "out.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "out.txt") as handle:
        handle.write("half")
        raise RuntimeError("interrupted")
    assert (tmp_path / "out.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


@pytest.mark.parametrize(
    "name", ["..", ".", "", "../x", "a/b", "/etc/passwd", "a\\b", "x\0y", "../" * 20 + "tmp/x"]
)
def test_only_plain_names_stay_inside_their_folder(tmp_path, name):
    with pytest.raises(UnsafePath):
        path_inside(tmp_path, name)


def test_a_symlink_leading_out_is_not_inside(tmp_path):
    (tmp_path / "out").symlink_to("/etc/passwd")
    with pytest.raises(UnsafePath, match="leads outside"):
        path_inside(tmp_path, "out")
    assert path_inside(tmp_path, "mnist.npz") == tmp_path / "mnist.npz"
