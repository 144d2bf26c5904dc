"""A full disk while writing a synthetic ``.im`` file: one error naming the file asked for
(never its temporary name) and saying "No space left on device"; nothing left behind
(issue 20, item 11)."""

from __future__ import annotations

import builtins
import errno
import os

import numpy as np
import pytest

from napari_nanosims.io import writer


def test_a_full_disk_names_the_final_file(tmp_path, monkeypatch):
    real_open = builtins.open

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.handle.name)

    monkeypatch.setattr(writer, "open", lambda name, mode="r", *args, **kwargs: FullDisk(
        real_open(name, mode, *args, **kwargs)), raising=False)
    target = tmp_path / "full.im"
    counts = np.ones((2, 2, 8, 8), np.uint32)
    with pytest.raises(OSError, match=f"cannot write {target}: No space left on device") \
            as caught:
        writer.write_im(target, counts, ["12C", "13C"], [12.0, 13.0], 5.0, 100.0)
    assert ".partial" not in str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no partial file, no target
