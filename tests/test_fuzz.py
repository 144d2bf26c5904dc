"""Seeded fuzzing of the reader: truncations, byte flips and random header values.

Every case must either load or raise ImFormatError, within a second, without
allocating more than about twice the file size.
"""

from __future__ import annotations

import time
import tracemalloc
import warnings

import numpy as np
import pytest

from napari_nanosims import ImFormatError, load_mims, write_im
from conftest import REAL_FILES, SHARED_DATA, real_file

N_CASES = 2400


def _sources(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 300, size=(3, 3, 16, 24)).astype(np.uint32)
    sources = [
        write_im(tmp_path / "new.im", data, ["12C", "13C", "SE"], [12, 13, 0], 5.0, 100),
        # as Cameca's Windows software writes them: rolled on reading
        write_im(tmp_path / "cameca.im", data, ["12C", "13C", "SE"], [12, 13, 0], 5.0, 100,
                 signed=False),
        write_im(tmp_path / "old.im", data, ["12C", "13C", "SE"], [12, 13, 0], 5.0, 100,
                 legacy=True),
    ]
    if SHARED_DATA.is_dir():
        sources += [str(real_file(name)) for name in REAL_FILES]
    elif __import__("os").environ.get("CI"):
        pytest.fail(f"CI must fuzz the real files too; {SHARED_DATA} is missing")
    return [open(path, "rb").read() for path in sources]


def _mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(raw)
    header_size = min(len(data), 30000)
    kind = rng.integers(0, 6)
    order = "<" if int.from_bytes(raw[4:8], "little") < 256 else ">"
    true_header_size = int.from_bytes(raw[8:12], "little" if order == "<" else "big")
    if kind == 4 and true_header_size <= len(data):  # tiny frames, very many of them
        image = true_header_size - 84
        width, height = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        frames = int(rng.integers(1000, 32768))
        for offset, value in ((6, width), (8, height), (14, frames)):
            data[image + offset:image + offset + 2] = value.to_bytes(
                2, "little" if order == "<" else "big", signed=True)
        return bytes(data)
    if kind == 5:  # the release field: old files claiming 4108 or later, and the reverse
        release = int(rng.choice([4108, 4109, 5000, 99999, 5, 11]))
        data[0:4] = release.to_bytes(4, "little" if order == "<" else "big", signed=True)
        return bytes(data)
    if kind == 0:  # truncation anywhere, mostly inside the header
        cut = int(rng.integers(0, header_size + 200)) if rng.random() < 0.7 else int(
            rng.integers(0, len(data) + 1))
        return bytes(data[:cut])
    if kind == 1:  # random byte flips in the header
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(0, header_size))] ^= int(rng.integers(1, 256))
        return bytes(data)
    if kind == 2:  # random 32-bit values at random aligned header offsets
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(0, header_size // 4)) * 4
            value = int(rng.choice([0, -1, 1, 2**31 - 1, -(2**31), int(rng.integers(-99999, 99999))]))
            data[at:at + 4] = value.to_bytes(4, "little", signed=True) if rng.random() < .5 \
                else value.to_bytes(4, "big", signed=True)
        return bytes(data)
    # a random header of plausible numbers followed by the original tail
    head = rng.integers(-5, 30000, size=32).astype("<i4" if rng.random() < .5 else ">i4")
    head[1] = rng.choice([27, 29, 39, 22, 0])
    return head.tobytes() + bytes(data[128:])


def test_fuzzed_files_load_or_raise_imformaterror(tmp_path):
    sources = _sources(tmp_path)
    rng = np.random.default_rng(12345)
    outcomes = {"loaded": 0, "rejected": 0}
    path = tmp_path / "fuzz.im"
    for case in range(N_CASES):
        raw = _mutate(sources[case % len(sources)], rng)
        path.write_bytes(raw)
        tracemalloc.start()
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mims = load_mims(path)
                checksum = int(np.asarray(mims.data).sum(dtype=np.uint64))
            assert checksum >= 0
            mims.header.to_dict()
            del mims
            outcomes["loaded"] += 1
        except ImFormatError as exc:
            assert "fuzz.im" in str(exc)
            outcomes["rejected"] += 1
        except Exception as exc:  # pragma: no cover - the failure we hunt
            raise AssertionError(f"case {case}: {type(exc).__name__}: {exc}") from exc
        finally:
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert elapsed < 1.0, f"case {case} took {elapsed:.2f} s"
        assert peak <= 2 * len(raw) + 2**20, f"case {case} allocated {peak} bytes"
    # both outcomes must really occur, or the mutations are not exercising the reader
    assert outcomes["loaded"] > 200 and outcomes["rejected"] > 200, outcomes
