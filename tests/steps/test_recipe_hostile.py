"""Recipe files from other people: every hostile file is one clear ValueError naming the
file, never a traceback, a hang or an unbounded read (issue 20, item 5)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from napari_nanosims.steps.recipe import MAX_RECIPE_BYTES, Recipe


def _one_line(exc_info, path):
    message = str(exc_info.value)
    assert str(path) in message and "\n" not in message and len(message) < 400, message
    return message


@pytest.mark.parametrize("name, text", [
    ("deep.json", '{"steps": ' + "[" * 1000 + "]" * 1000 + "}"),
    ("deep_objects.json", '{"steps": [], "x": ' + '{"a": ' * 1000 + "1" + "}" * 1000 + "}"),
    ("deep.toml", "steps = []\nx = " + "[" * 1000 + "]" * 1000),
    ("deep_tables.toml", "steps = []\nx = " + "{a = " * 1000 + "1" + "}" * 1000),
])
def test_deeply_nested_recipes_are_refused(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match="not a valid recipe file: nested too deeply") as info:
        Recipe.load(path)
    _one_line(info, path)


@pytest.mark.parametrize("name, data", [
    ("garbage.json", bytes(range(256)) * 8),
    ("garbage.toml", b"\xff\xfe\x00\x01binary"),
    ("nul.toml", b'steps = []\n\x00\x00\x00'),
])
def test_binary_garbage_is_refused(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError, match="not a recipe file") as info:
        Recipe.load(path)
    _one_line(info, path)


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")
def test_fifos_devices_and_folders_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "recipe.toml"
    os.mkfifo(fifo)  # reading it would wait for a writer for ever
    for path in (fifo, "/dev/zero", tmp_path):
        with pytest.raises(ValueError, match="not a regular file") as info:
            Recipe.load(path)
        _one_line(info, path)


def test_files_over_the_size_cap_are_refused(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as handle:  # sparse: no disk space used
        handle.truncate(MAX_RECIPE_BYTES + 1)
    with pytest.raises(ValueError, match="more than 16 MiB") as info:
        Recipe.load(path)
    _one_line(info, path)


@pytest.mark.parametrize("value, message", [
    ({"12C": "fast"}, r"dead_times_ns\['12C'\] must be a number, not 'fast'"),
    ({"12C": [40.0]}, r"dead_times_ns\['12C'\] must be a number, not \[40.0\]"),
    ({"12C": {"EM1": 40}}, r"dead_times_ns\['12C'\] must be a number"),
    ({"12C": True}, r"dead_times_ns\['12C'\] must be a number, not True"),
    ({"12C": None}, r"dead_times_ns\['12C'\] must be given"),
    ({"12C": -5.0}, r"dead_times_ns\['12C'\] must be at least"),
    ({"12C": "[" * 900}, r"dead_times_ns\['12C'\] must be a number, not '\[\[\[\["),
    ("forty", "dead_times_ns must be a number, not 'forty'"),
    ([1, 2], r"dead_times_ns must be a number, not \[1, 2\]"),
])
def test_wrong_types_in_per_label_parameters_name_the_parameter(tmp_path, value, message):
    path = tmp_path / "types.json"
    path.write_text(json.dumps({"steps": [{"step": "correct_dead_time",
                                           "parameters": {"dead_times_ns": value}}]}))
    with pytest.raises(ValueError, match=f"types.json: correct_dead_time: {message}") as info:
        Recipe.load(path)
    _one_line(info, path)


def test_a_deep_value_under_the_parser_limit_gives_a_short_message(tmp_path):
    path = tmp_path / "deep_value.json"
    path.write_text('{"steps": [{"step": "correct_dead_time", "parameters": '
                    '{"dead_times_ns": {"12C": ' + "[" * 900 + "]" * 900 + "}}}]}")
    with pytest.raises(ValueError, match=r"must be a number, not \[\[\[\[\.\.\.\]\]\]\]"):
        Recipe.load(path)


@pytest.mark.parametrize("steps, message", [
    ([{"step": ["remove_hot_pixels"]}], "step 1 needs a 'step' name"),
    ([{"step": {"a": 1}}], "step 1 needs a 'step' name"),
    ([{"step": "sum_frames"}] * 1001, "1001 steps; a recipe has at most 1000"),
])
def test_malformed_step_lists_are_refused(tmp_path, steps, message):
    path = tmp_path / "steps.json"
    path.write_text(json.dumps({"steps": steps}))
    with pytest.raises(ValueError, match=message) as info:
        Recipe.load(path)
    _one_line(info, path)
