"""Recipes saved as TOML load back to the same recipe for every step and kind of value;
QSA has no default beta or current; the header's primary-current field carries no unit."""

from __future__ import annotations

import pytest
from conftest import REPO, needs_shared, real_file

from napari_nanosims import Recipe, write_im
from napari_nanosims.cli import main
from napari_nanosims.steps.registry import STEPS

# Text that a naive TOML writer breaks: quotes, backslashes, a newline, non-ASCII.
AWKWARD_TEXT = 'a "quoted" \\path\\ µm\nline'
NOT_SET = object()  # stands for None as a parameter's value in the cases below


def _non_default(parameter):
    """A valid value of ``parameter`` different from its default (None: none exists)."""
    if parameter.optional and parameter.default is not None:
        return NOT_SET  # None where the default is a value: TOML has no null
    if parameter.choices:
        others = [c for c in parameter.choices if c != parameter.default]
        return others[0] if others else None
    if parameter.kind is bool:
        return not parameter.default
    if parameter.kind is str:
        if parameter.text_format is not None:
            return {"region": "2:30, 4:40", "frames": "0, 3-5"}.get(parameter.name)
        return AWKWARD_TEXT
    low = parameter.minimum if parameter.minimum is not None else (
        parameter.above + 1 if parameter.above is not None else 0)
    value = low + (2 if parameter.odd else 1)
    if parameter.odd and value % 2 == 0:
        value += 1
    if parameter.maximum is not None:
        value = min(value, parameter.maximum)
    return parameter.kind(value)


def _cases():
    for name, step in STEPS.items():
        values = {}
        for parameter in step.parameters:
            value = _non_default(parameter)
            if value is NOT_SET:
                values[parameter.name] = None
            elif value is not None:
                values[parameter.name] = value
        yield name, values
        per_label = {p.name: {"12C 14N": 1.5, "13C": 0.25, 'odd "label"': 2.0}
                     for p in step.parameters if p.per_label}
        if per_label:
            yield name, {**values, **per_label}


@pytest.mark.parametrize("name, values", list(_cases()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_step_survives_save_then_load_as_toml(tmp_path, name, values):
    recipe = Recipe(((name, values),), roll_data=False)
    for comments in (True, False):
        path = tmp_path / f"r_{comments}.toml"
        path.write_text(recipe.to_toml(comments=comments), encoding="utf-8")
        assert Recipe.load(path).to_dict() == recipe.to_dict()
    saved = recipe.save(tmp_path / "saved.toml")
    assert Recipe.load(saved).to_dict() == recipe.to_dict()


def test_per_label_dead_times_round_trip_through_the_file(tmp_path):
    recipe = Recipe((("correct_dead_time", {"dead_times_ns": {"12C": 38.0, "12C 14N": 44}}),))
    back = Recipe.load(recipe.save(tmp_path / "r.toml"))
    assert back.steps[0][1]["dead_times_ns"] == {"12C": 38.0, "12C 14N": 44.0}


def test_saved_toml_keeps_its_comments(tmp_path):
    text = Recipe((("correct_dead_time", {}),)).to_toml()
    assert "# Dead time:" in text and "# dead_times_ns = (not set)" in text


@pytest.mark.parametrize("parameters, missing", [
    ({}, "beta"), ({"beta": 0.6}, "primary_current_pA"),
    ({"primary_current_pA": 2.0}, "beta")])
def test_qsa_step_without_measured_values_is_refused(parameters, missing):
    with pytest.raises(ValueError, match=f"correct_qsa: {missing} must be given"):
        Recipe((("correct_dead_time", {}), ("correct_qsa", parameters)))


def test_qsa_recipe_file_without_values_fails_before_any_work(tmp_path, capsys):
    source = write_im(tmp_path / "a.im", [[[[1, 2], [3, 4]]]], ["12C"], [12.0], 1.0, 10)
    recipe = tmp_path / "qsa.toml"
    recipe.write_text('[[steps]]\nstep = "correct_dead_time"\n[[steps]]\n'
                      'step = "correct_qsa"\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["process", source, "--recipe", str(recipe), "--out", str(out)]) != 0
    assert "beta must be given" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


@needs_shared
def test_info_prints_the_primary_current_field_without_a_unit(capsys):
    assert main(["info", str(real_file("OpenMIMS_doc_051117_05-32dRe-03b.im"))]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if "primary" in line)
    assert "pA" not in line and "unit unknown" in line
    assert "47130" in line  # the stored value, as the oracle reads it


def test_info_says_not_measured_for_the_sentinel(tmp_path, capsys):
    path = write_im(tmp_path / "a.im", [[[[1, 2], [3, 4]]]], ["12C"], [12.0], 1.0, 10,
                    primary_current_raw=(36619, 2**31 - 1))
    assert main(["info", path]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if "primary" in line)
    assert "36619 at start" in line and "not measured at end" in line and "pA" not in line


def test_documented_dead_time_magnitude_depends_on_rate_not_dwell():
    """docs/corrections.md: +4.6 % at 1 Mcps with tau = 44 ns, whatever the dwell."""
    import re

    import numpy as np

    from napari_nanosims import Acquisition, correct_dead_time

    text = REPO.joinpath("docs", "corrections.md").read_text()
    claim = re.search(r"at 1 Mcps with tau = 44 ns it is \+([\d.]+) %, whatever the dwell",
                      " ".join(text.split()))
    assert claim, "the dead-time magnitude statement is missing from docs/corrections.md"
    for dwell_us in (1000.0, 60_000.0):
        counts = np.full((1, 1, 2, 2), 1e6 * dwell_us * 1e-6)  # 1 Mcps
        acquisition = Acquisition.from_arrays(counts, ["12C"], dwell_time_us=dwell_us,
                                              dead_times_ns=[44] * 7)
        corrected = np.asarray(correct_dead_time(acquisition).counts)
        x = 1e6 * 44e-9
        assert 100 * (corrected[0, 0, 0, 0] / counts[0, 0, 0, 0] - 1) == pytest.approx(
            100 * x / (1 - x))
        assert f"{100 * x / (1 - x):.1f}" == claim.group(1)


def test_none_where_the_default_is_a_value_survives_toml(tmp_path):
    """ratio's min_counts=None (no threshold) must not come back as the default 10."""
    recipe = Recipe((("sum_frames", {}), ("ratio", {"expression": "12C15N/12C14N",
                                                     "min_counts": None})))
    back = Recipe.load(recipe.save(tmp_path / "r.toml"))
    assert back.to_dict() == recipe.to_dict()
    assert back.to_dict()["steps"][1]["parameters"]["min_counts"] is None
