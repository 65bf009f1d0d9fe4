"""digr.io: atomic file and folder writes."""

import json
import os
import stat

import numpy as np
import pytest

from digr.io import atomic_dir, atomic_write, atomic_write_json, atomic_write_text, replace_dir


class Boom(Exception):
    pass


def _umask_mode() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def test_text_written_and_no_temp_left(tmp_path):
    path = tmp_path / "a.txt"
    assert atomic_write_text(path, "héllo\n") == path
    assert path.read_text(encoding="utf-8") == "héllo\n"
    atomic_write_text(path, "second\n")  # replaces an existing file
    assert path.read_text() == "second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_new_file_gets_umask_permissions_not_mkstemp_0600(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == _umask_mode()


def test_json_format_matches_dumps_plus_newline(tmp_path):
    obj = {"b": [1, 2], "a": {"x": None}}
    atomic_write_json(tmp_path / "a.json", obj)
    assert (tmp_path / "a.json").read_text() == json.dumps(obj, indent=2) + "\n"
    atomic_write_json(tmp_path / "b.json", obj, indent=None)
    assert (tmp_path / "b.json").read_text() == json.dumps(obj) + "\n"


def test_unserialisable_json_leaves_nothing(tmp_path):
    (tmp_path / "a.json").write_text("old\n")
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "a.json", {"x": object()})
    assert (tmp_path / "a.json").read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_writer_gets_a_temp_path_in_the_same_folder(tmp_path):
    seen = []

    def writer(tmp):
        seen.append(tmp)
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.") and tmp.exists()
        tmp.write_bytes(b"\x00\x01")

    atomic_write(tmp_path / "out.bin", writer)
    assert (tmp_path / "out.bin").read_bytes() == b"\x00\x01"
    assert not seen[0].exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_temp_names_are_unique_per_writer(tmp_path):
    names = []

    def outer(tmp):  # a second writer of the same path while the first is still writing
        names.append(tmp)
        atomic_write(tmp_path / "x", lambda t: (names.append(t), t.write_text("inner")))
        tmp.write_text("outer")

    atomic_write(tmp_path / "x", outer)
    assert names[0] != names[1]
    assert (tmp_path / "x").read_text() == "outer"
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_npz_through_an_open_file(tmp_path):
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, a=np.arange(3))

    atomic_write(tmp_path / "d.npz", write)
    with np.load(tmp_path / "d.npz") as z:
        np.testing.assert_array_equal(z["a"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]


@pytest.mark.parametrize("existing", [False, True])
def test_failing_writer_leaves_no_temp_and_old_file_untouched(tmp_path, existing):
    path = tmp_path / "f.txt"
    if existing:
        path.write_text("old content\n")

    def writer(tmp):
        tmp.write_text("half")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(path, writer)
    if existing:
        assert path.read_text() == "old content\n"
        assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    else:
        assert list(tmp_path.iterdir()) == []


def test_missing_parent_is_an_error_not_created(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "no" / "a.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_replace_dir_into_new_and_existing_destination(tmp_path):
    dest = tmp_path / "ck"
    new = tmp_path / ".ck.new1"
    new.mkdir()
    (new / "a").write_text("1")
    assert replace_dir(new, dest) == dest
    assert sorted(p.name for p in dest.iterdir()) == ["a"]

    newer = tmp_path / ".ck.new2"
    newer.mkdir()
    (newer / "b").write_text("2")
    replace_dir(newer, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["b"]  # the old folder's files are gone
    assert (dest / "b").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]  # no temp and no .ck.old left


def test_replace_dir_clears_a_stale_old_folder(tmp_path):
    dest = tmp_path / "ck"
    dest.mkdir()
    (tmp_path / ".ck.old").mkdir()
    (tmp_path / ".ck.old" / "junk").write_text("x")
    new = tmp_path / ".ck.tmp"
    new.mkdir()
    replace_dir(new, dest)
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_atomic_dir_swaps_in_on_success(tmp_path):
    dest = tmp_path / "resume"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with atomic_dir(dest) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".resume.") and tmp != dest
        (tmp / "state.json").write_text("{}")
    assert sorted(p.name for p in dest.iterdir()) == ["state.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["resume"]


def test_atomic_dir_failure_keeps_destination_and_removes_temp(tmp_path):
    dest = tmp_path / "resume"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(Boom):
        with atomic_dir(dest) as tmp:
            (tmp / "half").write_text("x")
            raise Boom
    assert sorted(p.name for p in dest.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["resume"]
