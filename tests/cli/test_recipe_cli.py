"""Recipes (TOML/JSON), run_recipe, and 'nanosims process' driven by them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import tifffile
from conftest import needs_shared, real_file

from napari_nanosims import Recipe, RecipeCancelled, default_recipe, open_acquisition, run_recipe
from napari_nanosims.cli import main
from napari_nanosims.testing.factory import poisson_counts


@pytest.fixture
def hot_file(im_factory):
    """Write Poisson(20) counts with one hot pixel (900 counts, frame 3, at y 7, x 9)."""
    def make(name="a.im", labels=("12C", "13C", "12C 14N", "SE"), n_frames=12, seed=0,
             size=(32, 40)):
        counts = poisson_counts(n_frames, len(labels), size, mean=20, seed=seed)
        counts[min(3, n_frames - 1), :, 7, 9] = 900
        return im_factory(name, counts, labels=labels, raster_um=10.0, dwell_time_us=1000)

    return make


def test_toml_and_json_round_trip(tmp_path):
    recipe = Recipe((("remove_hot_pixels", {"num_outliers": 2, "kernel_size": 5}),
                     ("align_frames", {"method": "subpixel", "channel": "12C"}),
                     ("sum_frames", {})), roll_data=False)
    for suffix in (".toml", ".json"):
        path = recipe.save(tmp_path / f"r{suffix}")
        loaded = Recipe.load(path)
        assert loaded.to_dict() == recipe.to_dict()
        with pytest.raises(FileExistsError):
            recipe.save(path)
    assert "# median filter window" in (tmp_path / "r.toml").read_text()


@pytest.mark.parametrize("text, message", [
    ('steps = [{step = "nope"}]', "unknown step 'nope'"),
    ('[[steps]]\nstep = "remove_hot_pixels"\n[steps.parameters]\nkernel_size = 4',
     "kernel_size must be odd"),
    ('[[steps]]\nstep = "align_frames"\n[steps.parameters]\nmethod = "magic"', "method must be"),
    ('[[steps]]\nstep = "align_frames"\n[steps.parameters]\nbogus = 1', "unknown parameter"),
    ("steps = 3", "needs a 'steps' list"),
    ("this is [not toml", "not a valid recipe"),
])
def test_bad_recipes_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        Recipe.load(path)
    assert "bad.toml" in str(info.value)


def test_run_recipe_progress_and_cancel(hot_file):
    path = hot_file()
    seen = []
    result = run_recipe(path, default_recipe(), progress=lambda *a: seen.append(a))
    assert {s[0] for s in seen} == {"remove_hot_pixels", "align_frames", "exclude_frames",
                                   "sum_frames"}
    assert result.sums.shape == (4, 32, 40)
    assert [r.name for r in result.history] == ["remove_hot_pixels", "align_frames",
                                                "exclude_frames", "sum_frames"]
    stop = threading.Event()
    stop.set()
    with pytest.raises(RecipeCancelled):
        run_recipe(path, default_recipe(), cancel=stop)
    with pytest.raises(RecipeCancelled):
        run_recipe(open_acquisition(path), default_recipe(), cancel=lambda: len(seen) > 0)


def test_record_replays_bit_for_bit(hot_file, tmp_path, capsys):
    path = hot_file(n_frames=15)
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["process", path, "--out", str(first), "--subpixel", "--kernel-size", "5",
                 "--roll", "no"]) == 0
    record = first / "a_processing.json"
    assert main(["process", path, "--recipe", str(record), "--out", str(second)]) == 0
    for name in ("a_sums.ome.tif", "a_aligned.ome.tif"):
        a, b = tifffile.imread(first / name), tifffile.imread(second / name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    one, two = (json.loads((folder / "a_processing.json").read_text())
                for folder in (first, second))
    assert one["steps"] == two["steps"] and one["roll_data"] is False
    assert one["translations_px"] == two["translations_px"]
    assert {s["step"]: s["parameters"] for s in one["steps"]}["remove_hot_pixels"][
        "kernel_size"] == 5


def test_cli_options_override_a_recipe_file(hot_file, tmp_path):
    path = hot_file()
    recipe = tmp_path / "r.toml"
    assert main(["recipe", "--out", str(recipe)]) == 0
    assert Recipe.load(recipe).to_dict() == default_recipe().to_dict()
    assert main(["process", path, "--recipe", str(recipe), "--num-outliers", "2",
                 "--out", str(tmp_path / "o")]) == 0
    record = json.loads((tmp_path / "o" / "a_processing.json").read_text())
    assert record["steps"][0]["parameters"]["num_outliers"] == 2


def test_recipe_command_prints_a_loadable_commented_recipe(tmp_path, capsys):
    assert main(["recipe"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# napari-nanosims recipe")
    (tmp_path / "printed.toml").write_text(text)
    assert Recipe.load(tmp_path / "printed.toml").to_dict() == default_recipe().to_dict()


def test_auto_alignment_works_without_12c14n(hot_file, tmp_path, capsys):
    path = hot_file(labels=("12C", "13C", "SE"))
    assert main(["process", path, "--out", str(tmp_path / "o")]) == 0
    assert "aligned on 12C" in capsys.readouterr().out


def test_one_ion_channel_and_one_frame_files_are_processed(hot_file, tmp_path, capsys):
    one_ion = hot_file("one.im", labels=("12C 14N", "SE"))
    assert main(["process", one_ion, "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "num_outliers=3 but the file has 1 ion channel" in err
    warning = next(line for line in err.splitlines() if line.startswith("warning:"))
    assert warning.count("one.im") == 1  # the file is named once per warning line
    single = hot_file("single.im", n_frames=1)
    assert main(["process", single, "--out", str(tmp_path / "p"),
                 "--max-repeat-fraction", "1.5"]) == 0
    assert "hot pixels replaced" in capsys.readouterr().out
    record = json.loads((tmp_path / "p" / "single_processing.json").read_text())
    assert record["hot_pixels_per_frame"][0] >= 1  # the 900-count event was removed


def test_padding_too_large_fails_per_file_and_goes_on(hot_file, tmp_path, capsys):
    small = hot_file("small.im", size=(16, 16))
    large = hot_file("large.im", size=(64, 64))
    code = main(["process", small, large, "--padding", "40", "--out", str(tmp_path / "o")])
    captured = capsys.readouterr()
    assert code == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "small.im" in errors[0] and "padding" in errors[0]
    assert "Traceback" not in captured.err
    assert (tmp_path / "o" / "large_sums.ome.tif").exists()
    with pytest.raises(SystemExit):  # beyond any frame: refused before any work
        main(["process", small, "--padding", "100000"])


def test_dangling_symlink_at_an_output_is_not_replaced(hot_file, tmp_path, capsys):
    path = hot_file()
    out = tmp_path / "o"
    out.mkdir()
    (out / "a_sums.ome.tif").symlink_to(tmp_path / "nowhere")
    assert main(["process", path, "--out", str(out)]) == 1
    assert "outputs exist" in capsys.readouterr().err
    assert os.path.islink(out / "a_sums.ome.tif")


def test_stale_partials_of_dead_processes_are_removed(hot_file, tmp_path):
    path = hot_file()
    out = tmp_path / "o"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f"a_sums.ome.tif.partial-{dead.pid}"
    stale.write_bytes(b"half")
    mine = out / f"other.partial-{os.getppid()}"  # a live process: left alone
    mine.write_bytes(b"busy")
    assert main(["process", path, "--out", str(out)]) == 0
    assert not stale.exists() and mine.exists()


SLOW_WRITER = textwrap.dedent("""
    import sys, time
    import napari_nanosims.export.ometiff as ometiff
    from napari_nanosims.cli import main
    original = ometiff.write_ome_tiff
    def slow(path, *args, **kwargs):
        result = original(path, *args, **kwargs)
        print("WRITING", flush=True)
        time.sleep(60)
        return result
    ometiff.write_ome_tiff = slow
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupt_while_writing_leaves_nothing_and_says_one_line(hot_file, tmp_path, signum,
                                                                 code):
    path = hot_file()
    out = tmp_path / "o"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, "process", path, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "WRITING"
        assert list(out.glob("*.partial-*"))  # a temporary file is there mid-write
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == code
    messages = [line for line in err.splitlines() if line and not line.endswith("...")]
    assert "Traceback" not in err and len(messages) == 1 and "interrupted" in messages[0]
    assert not list(out.glob("*"))


@needs_shared
@pytest.mark.parametrize("name", ["OpenMIMS_doc_040702_06-05mos-03a.im",
                                  "OpenMIMS_doc_051117_05-32dRe-03b.im"])
def test_real_files_through_the_cli(tmp_path, name, capsys):
    out = tmp_path / "o"
    assert main(["process", str(real_file(name)), "--out", str(out),
                 "--max-repeat-fraction", "1.5"]) == 0
    stem = name[:-3]
    sums = tifffile.imread(out / f"{stem}_sums.ome.tif")
    raw = np.asarray(open_acquisition(real_file(name)).counts)
    assert sums.shape == raw.shape[1:]
    record = json.loads((out / f"{stem}_processing.json").read_text())
    assert [c["detector"] for c in record["channels"]] == ["EM1", "EM2", "EM3", "EM4"]
    assert record["alignment_channel"] == "12C 14N"


def test_header_only_file_is_a_one_line_error(im_factory, tmp_path, capsys):
    empty = im_factory("empty.im", np.zeros((0, 2, 8, 8), np.uint32), labels=["12C", "SE"])
    assert main(["process", empty, "--out", str(tmp_path / "o")]) == 1
    assert "no pixel data" in capsys.readouterr().err
