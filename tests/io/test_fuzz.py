"""Seeded fuzzing of the reader: truncations, byte flips and random header values.

Every case must either load or raise ImFormatError, within a budget of function calls
(work counted, not timed: a slow or loaded machine cannot fail it, a reader looping over a
corrupt count can), without allocating more than about twice the file size.
"""

from __future__ import annotations

import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import REAL_FILES, SHARED_DATA, real_file

from napari_nanosims import ImFormatError, load_mims
from napari_nanosims.testing.fuzz import mutate_im

N_CASES = 2400
#: Function calls (Python and C) one case may make. Loading a fuzzed file takes about
#: 1,300-2,600 calls; 100,000 calls of Python take well under the second the reader was once
#: given, so a reader that loops over a corrupt count fails here whatever the machine's load.
CALL_BUDGET = 100_000


class _CallCounter:
    """Count function calls while active, through ``sys.setprofile``.

    The count depends only on the code and the input, so it measures the reader's work
    deterministically where elapsed time would measure the machine.
    """

    def __init__(self):
        self.calls = 0

    def _profile(self, frame, event, arg):
        if event in ("call", "c_call"):
            self.calls += 1

    def __enter__(self):
        self.calls = 0
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc_info):
        sys.setprofile(None)
        return False


def _sources(im_factory):
    data = np.random.default_rng(0).integers(0, 300, size=(3, 3, 16, 24)).astype(np.uint32)
    options = {"labels": ["12C", "13C", "SE"], "masses_amu": [12, 13, 0]}
    sources = [
        im_factory("new.im", data, **options),
        # as Cameca's Windows software writes them: rolled on reading
        im_factory("cameca.im", data, signed=False, **options),
        im_factory("old.im", data, legacy=True, **options),
    ]
    if SHARED_DATA.is_dir():
        sources += [str(real_file(name)) for name in REAL_FILES]
    elif __import__("os").environ.get("CI"):
        pytest.fail(f"CI must fuzz the real files too; {SHARED_DATA} is missing")
    return [open(path, "rb").read() for path in sources]


@pytest.mark.slow
def test_fuzzed_files_load_or_raise_imformaterror(tmp_path, im_factory):
    sources = _sources(im_factory)
    rng = np.random.default_rng(12345)
    outcomes = {"loaded": 0, "rejected": 0}
    most_calls = 0
    path = tmp_path / "fuzz.im"
    for case in range(N_CASES):
        raw = mutate_im(sources[case % len(sources)], rng)
        path.write_bytes(raw)
        tracemalloc.start()
        counter = _CallCounter()
        try:
            with counter:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    mims = load_mims(path)
                    checksum = int(np.asarray(mims.data).sum(dtype=np.uint64))
                mims.header.to_dict()
            assert checksum >= 0
            del mims
            outcomes["loaded"] += 1
        except ImFormatError as exc:
            assert "fuzz.im" in str(exc)
            outcomes["rejected"] += 1
        except Exception as exc:  # pragma: no cover - the failure we hunt
            raise AssertionError(f"case {case}: {type(exc).__name__}: {exc}") from exc
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert counter.calls <= CALL_BUDGET, f"case {case} made {counter.calls} calls"
        most_calls = max(most_calls, counter.calls)
        assert peak <= 2 * len(raw) + 2**20, f"case {case} allocated {peak} bytes"
    # both outcomes must really occur, or the mutations are not exercising the reader
    assert outcomes["loaded"] > 200 and outcomes["rejected"] > 200, outcomes
    assert most_calls > 100  # the counter did see the reader's work
