"""Replay, bit for bit: identical runs write byte-identical OME-TIFF and .nrrd files.

The OME UUID is derived from the content (data, metadata, and the history that made
them), and no file carries a time stamp.
"""

from __future__ import annotations

import re

import numpy as np
import tifffile

from napari_nanosims import make_demo_im
from napari_nanosims.batch.single import process_file
from napari_nanosims.cli import main
from napari_nanosims.export.ometiff import write_ome_tiff
from napari_nanosims.steps.recipe import Recipe


def _ome_uuid(path) -> str:
    with tifffile.TiffFile(path) as tif:
        return re.search(r'<OME [^>]*UUID="([^"]+)"', tif.ome_metadata).group(1)


def test_two_identical_runs_write_identical_files(tmp_path):
    demo = make_demo_im(tmp_path / "cells.im", n_frames=4, seed=2, size=64)
    recipe = Recipe((("align_frames", {"method": "subpixel"}),
                     ("sum_frames", {}), ("ratio", {"expression": "13C/12C"})))
    first = process_file(demo["path"], recipe, tmp_path / "first")[1]
    second = process_file(demo["path"], recipe, tmp_path / "second")[1]
    tiffs = sorted(key for key, path in first.items() if str(path).endswith(".tif"))
    # sums, variance, the aligned stack and the ratio image (value and error)
    assert {"sums", "variance", "stack"} <= set(tiffs) and len(tiffs) >= 4
    for key in tiffs:
        assert first[key].read_bytes() == second[key].read_bytes(), key
    # The UUID depends on the content: the four files have four different ones.
    assert len({_ome_uuid(first[key]) for key in tiffs}) == len(tiffs)


def test_cli_replay_of_the_record_is_bit_for_bit(tmp_path):
    demo = make_demo_im(tmp_path / "a.im", n_frames=5, seed=1, size=48)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["process", demo["path"], "--out", str(first), "--subpixel",
                 "--kernel-size", "5", "--roll", "no"]) == 0
    assert main(["process", demo["path"], "--recipe", str(first / "a_processing.json"),
                 "--out", str(second)]) == 0
    for name in ("a_sums.ome.tif", "a_variance.ome.tif", "a_aligned.ome.tif"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_nrrd_export_is_the_same_file_at_any_time(tmp_path):
    import time

    from napari_nanosims import open_acquisition, write_nrrd

    acquisition = open_acquisition(make_demo_im(tmp_path / "c.im", n_frames=2, seed=0,
                                                size=32)["path"])
    one = write_nrrd(acquisition, tmp_path / "one.nrrd").read_bytes()
    time.sleep(1.1)  # a writer that stamped the time (to the second) would differ now
    two = write_nrrd(acquisition, tmp_path / "two.nrrd").read_bytes()
    assert one == two


def test_uuid_follows_data_and_description(tmp_path):
    from napari_nanosims.export.ometiff import content_uuid

    data = np.arange(2 * 3 * 4, dtype=np.uint32).reshape(2, 3, 4)
    metadata = {"axes": "CYX", "Description": '{"history": ["a"]}'}
    same = content_uuid(data.copy(), dict(metadata))
    assert same == content_uuid(data, metadata)
    other_data = data.copy()
    other_data[1, 2, 3] += 1
    assert content_uuid(other_data, metadata) != same
    assert content_uuid(data, {**metadata, "Description": '{"history": ["b"]}'}) != same
    # the same values in another dtype are another file
    assert content_uuid(data.astype(np.float32), metadata) != same
    write_ome_tiff(tmp_path / "x.ome.tif", data, "CYX", 0.1, ["a", "b"], {"k": 1})
    write_ome_tiff(tmp_path / "y.ome.tif", data, "CYX", 0.1, ["a", "b"], {"k": 2})
    assert _ome_uuid(tmp_path / "x.ome.tif") != _ome_uuid(tmp_path / "y.ome.tif")
    # no DateTime tag either
    with tifffile.TiffFile(tmp_path / "x.ome.tif") as tif:
        assert "DateTime" not in {tag.name for tag in tif.pages[0].tags}
