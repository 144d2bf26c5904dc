"""``.nrrd`` and OME-TIFF reading held to the ``.im`` contract: seeded, structure-aware
fuzzing (every case reads or raises a ValueError naming the file, within twice the file's
size of memory plus 1 MiB), and the crafted files of issue 20 one by one."""

from __future__ import annotations

import bz2
import gzip
import logging
import tracemalloc
import warnings

import numpy as np
import pytest
import tifffile

from napari_nanosims import ImFormatError, ImFormatWarning
from napari_nanosims.export.nrrd import read_nrrd
from napari_nanosims.export.ometiff import read_ome_tiff
from napari_nanosims.testing.fuzz import (
    mutate_nrrd,
    mutate_ome,
    nrrd_sources,
    ome_sources,
    run_case,
)

N_CASES = 300
MIB = 1 << 20


def _read_nrrd(path):
    acquisition = read_nrrd(path)
    assert np.asarray(acquisition.counts).shape == acquisition.shape


def _read_ome_as_napari(path):
    from napari_nanosims._napari.layers import result_layer_data
    from napari_nanosims._napari.reader import get_results_reader

    get_results_reader(str(path))  # never raises
    content = read_ome_tiff(path)
    if content["description"] is not None:
        assert result_layer_data(content, str(path))


def _fuzz(sources, mutate, read, path):
    rng = np.random.default_rng(2024)
    kinds = {"read": 0, "refused": 0, "escaped": 0}
    for case in range(N_CASES):
        outcome = run_case(read, path, mutate(sources[case % len(sources)], rng))
        kinds[outcome.kind] += 1
        assert outcome.kind != "escaped", f"case {case}: {outcome.message}"
        assert outcome.peak <= 2 * outcome.size + MIB, \
            f"case {case}: {outcome.peak} bytes traced for a file of {outcome.size}"
    # both outcomes occur, or the mutations do not exercise the reader
    assert kinds["read"] > N_CASES // 10 and kinds["refused"] > N_CASES // 10, kinds


@pytest.mark.slow
def test_fuzzed_nrrd_files_read_or_name_the_file(tmp_path):
    _fuzz(nrrd_sources(tmp_path), mutate_nrrd, _read_nrrd, tmp_path / "fuzz.nrrd")


@pytest.mark.slow
def test_fuzzed_ome_tiffs_read_or_name_the_file(tmp_path):
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _fuzz(ome_sources(scratch), lambda raw, rng: mutate_ome(raw, rng, scratch),
          _read_ome_as_napari, tmp_path / "fuzz.ome.tif")


def _peak(call):
    tracemalloc.start()
    try:
        return call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        _peak.last = peak


def _nrrd_parts(tmp_path):
    raw = nrrd_sources(tmp_path)[0]
    header, _, data = raw.partition(b"\n\n")
    return header, data


def test_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    """A 4x4 image whose gzip payload inflates to 64 MiB: refused, in 256 KiB pieces."""
    header, _ = _nrrd_parts(tmp_path)
    lines = [b"encoding: gzip" if line.startswith(b"encoding") else
             b"sizes: 4 4 1 1" if line.startswith(b"sizes") else line
             for line in header.split(b"\n")]
    path = tmp_path / "bomb.nrrd"
    path.write_bytes(b"\n".join(lines) + b"\n\n" + gzip.compress(bytes(64 * MIB), mtime=0))
    with pytest.raises(ImFormatError, match="bomb.nrrd: the gzip data inflate to"):
        _peak(lambda: read_nrrd(path))
    assert _peak.last < MIB


def test_sizes_beyond_the_compressed_bytes_are_refused_before_inflating(tmp_path):
    header, data = _nrrd_parts(tmp_path)
    lines = [b"encoding: gzip" if line.startswith(b"encoding") else
             b"sizes: 40000 40000 100 2" if line.startswith(b"sizes") else line
             for line in header.split(b"\n")]
    path = tmp_path / "claims.nrrd"
    path.write_bytes(b"\n".join(lines) + b"\n\n" + gzip.compress(data, mtime=0))
    with pytest.raises(ImFormatError, match="claims.nrrd: .* bytes of gzip data cannot hold"):
        _peak(lambda: read_nrrd(path))
    assert _peak.last < MIB


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", lambda data: gzip.compress(data, mtime=0)),
    # two gzip members in a row are one stream (as gzip itself reads them)
    ("gzip", lambda data: gzip.compress(data[:7], mtime=0) + gzip.compress(data[7:], mtime=0)),
    ("bzip2", bz2.compress)])
def test_compressed_payloads_read_as_the_raw_one(tmp_path, encoding, compress):
    header, data = _nrrd_parts(tmp_path)
    raw_path = tmp_path / "raw.nrrd"
    raw_path.write_bytes(header + b"\n\n" + data)
    packed = tmp_path / "packed.nrrd"
    packed.write_bytes(header.replace(b"encoding: raw", f"encoding: {encoding}".encode())
                       + b"\n\n" + compress(data))
    expected = np.frombuffer(data, ">u2").reshape(2, 3, 6, 5).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(read_nrrd(packed).counts, expected)
    np.testing.assert_array_equal(read_nrrd(raw_path).counts, expected)
    assert read_nrrd(packed).history == read_nrrd(raw_path).history  # checksum matched
    truncated = tmp_path / "truncated.nrrd"
    truncated.write_bytes(packed.read_bytes()[:-12])
    with pytest.raises(ImFormatError, match="truncated.nrrd"):
        read_nrrd(truncated)


@pytest.mark.parametrize("key, value", [
    ("labels", "[" * 20000 + "]" * 20000), ("history", '[{"step": 1}]'),
    ("header", '{"n_masses": "x", "labels": [1, 2], "analysis_date": "no date"}'),
    ("translations_px", "[[1e999, 0]]"), ("detectors", "{"), ("detectors", '["EMd", "SE"]'),
    ("header", '{"detectors": ["EMd", "SE"]}')])
def test_hostile_json_of_ours_is_left_out_with_one_warning(tmp_path, key, value):
    header, data = _nrrd_parts(tmp_path)
    prefix = f"napari_nanosims_{key}:=".encode()
    lines = [line for line in header.split(b"\n") if not line.startswith(prefix)]
    path = tmp_path / "hostile.nrrd"
    path.write_bytes(b"\n".join(lines + [prefix + value.encode()]) + b"\n\n" + data)
    with pytest.warns(ImFormatWarning, match=f"hostile.nrrd: .*napari_nanosims_{key}"):
        acquisition = read_nrrd(path)
    np.testing.assert_array_equal(
        acquisition.counts, np.frombuffer(data, ">u2").reshape(2, 3, 6, 5).transpose(1, 0, 2, 3))


def _ours(tmp_path):
    return ome_sources(tmp_path)[2]  # the stack: 3 frames, 2 channels, 6 x 5


def _with_xml(tmp_path, raw, change, name="crafted.ome.tif"):
    path = tmp_path / name
    path.write_bytes(raw)
    with tifffile.TiffFile(path) as tif:
        xml = tif.pages.first.description
    tifffile.tiffcomment(path, change(xml).encode())
    return path


@pytest.mark.parametrize("frames", [40_000, 12_000, 10**9])
def test_ome_xml_claiming_more_frames_is_refused_before_allocating(tmp_path, frames):
    path = _with_xml(tmp_path, _ours(tmp_path),
                     lambda xml: xml.replace('SizeT="3"', f'SizeT="{frames}"'))
    for call in (lambda: read_ome_tiff(path), lambda: read_ome_tiff(path, metadata_only=True)):
        with pytest.raises(ImFormatError, match="crafted.ome.tif: the OME metadata claim"):
            _peak(call)
        assert _peak.last < 2 * path.stat().st_size + MIB
    from napari_nanosims._napari.reader import get_results_reader

    assert get_results_reader(str(path)) is None  # napari is told: not ours to read


def test_malformed_xml_and_deep_json_name_the_file(tmp_path):
    raw = _ours(tmp_path)
    broken = _with_xml(tmp_path, raw, lambda xml: xml.replace("</Pixels>", ""),
                       "broken.ome.tif")
    with pytest.raises(ImFormatError, match="broken.ome.tif: the OME metadata are not valid"):
        read_ome_tiff(broken)
    deep = _with_xml(tmp_path, raw, lambda xml: xml.replace(
        "</Image>", "<a>" * 5000 + "</a>" * 5000 + "</Image>"), "deep.ome.tif")
    with pytest.raises(ImFormatError, match="deep.ome.tif: .* more than 32 levels"):
        read_ome_tiff(deep)
    # our description nested too deeply for json: not ours (no RecursionError)
    nested = _with_xml(tmp_path, raw, lambda xml: xml[:xml.find("<Description>") + 13]
                       + "[" * 20000 + "]" * 20000 + xml[xml.find("</Description>"):],
                       "nested.ome.tif")
    assert read_ome_tiff(nested, ours_only=True) is None
    assert read_ome_tiff(nested)["description"] is None


def test_description_values_of_the_wrong_type_are_left_out(tmp_path):
    def change(xml):
        start, end = xml.find("<Description>") + 13, xml.find("</Description>")
        return (xml[:start] + '{"napari_nanosims": 1, "kind": "stack", "channels": 3, '
                '"history": [{"step": 1}], "header": []}' + xml[end:])
    path = _with_xml(tmp_path, _ours(tmp_path), change)
    with pytest.warns(ImFormatWarning, match="crafted.ome.tif: .*channels, history, header"):
        content = read_ome_tiff(path)
    assert content["description"] == {"napari_nanosims": 1, "kind": "stack"}
    assert content["data"].shape == (3, 2, 6, 5)


def test_channel_names_that_do_not_match_the_data_are_refused(tmp_path):
    path = _with_xml(tmp_path, _ours(tmp_path), lambda xml: xml.replace(
        "<TiffData", '<Channel ID="Channel:0:9" Name="extra"/><TiffData', 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ImFormatError, match="crafted.ome.tif: 2 channels in the data "
                                                "and 3 channel names"):
            read_ome_tiff(path)
