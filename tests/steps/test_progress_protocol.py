"""One progress protocol: steps yield Progress, one driver runs every progress generator
(cancel, close, result), and the public generators keep their documented yields."""

from __future__ import annotations

import threading
import warnings

import pytest

from napari_nanosims import Recipe, iter_process_image_data, open_acquisition, run_recipe
from napari_nanosims.steps.progress import Cancelled, Progress, relay, run_to_completion
from napari_nanosims.steps.recipe import RecipeCancelled, iter_run_recipe


def _counting(n, closed):
    try:
        yield from range(1, n + 1)
    finally:
        closed.append(True)
    return "result"


def test_the_driver_returns_the_result_relays_and_cancels():
    seen, closed = [], []
    assert run_to_completion(_counting(3, closed), seen.append) == "result"
    assert seen == [1, 2, 3] and closed == [True]
    relayed = relay(_counting(3, []), lambda done: (done, -done))
    assert list(relayed) == [1, -1, 2, -2, 3, -3]
    cancel, closed = threading.Event(), []
    generator = relay(_counting(5, closed), cancel=cancel)
    assert next(generator) == 1
    cancel.set()
    with pytest.raises(Cancelled):
        next(generator)
    assert closed == [True]  # the inner generator was closed, not left suspended


def test_every_step_of_a_recipe_yields_progress_with_its_name(im_factory):
    path = im_factory("a.im", frames=4)
    recipe = Recipe((("remove_hot_pixels", {}), ("correct_dead_time", {}),
                     ("align_frames", {"method": "subpixel"}), ("exclude_frames", {}),
                     ("sum_frames", {})))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = list(iter_run_recipe(open_acquisition(path), recipe))
    assert all(isinstance(item, Progress) for item in items)
    assert [name for name, _ in recipe.steps] == list(dict.fromkeys(i.step for i in items))
    assert all(0 <= item.done <= item.total for item in items)


def test_a_cancelled_recipe_raises_recipe_cancelled(im_factory):
    path = im_factory("a.im", frames=4)
    with pytest.raises(RecipeCancelled, match="cancelled during remove_hot_pixels"):
        list(iter_run_recipe(path, Recipe((("remove_hot_pixels", {}),)), cancel=lambda: True))


def test_the_openformat_generator_keeps_its_step_done_total_tuples(im_factory):
    path = im_factory("a.im", frames=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = list(iter_process_image_data(path, "12C 14N"))
    assert all(isinstance(item, tuple) and len(item) == 3 for item in items)
    assert list(dict.fromkeys(item[0] for item in items)) == [
        "hot pixels", "aligning", "summing"]


def test_recipe_from_history_keeps_the_parameters_and_drops_the_results(im_factory):
    path = im_factory("a.im", frames=4)
    recipe = Recipe((("remove_hot_pixels", {"kernel_size": 5}),
                     ("align_frames", {"method": "subpixel"}),
                     ("exclude_frames", {"frames": "0"}), ("sum_frames", {})))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_recipe(path, recipe)
    replay = Recipe.from_history(result.history_dicts())
    assert replay.steps[0][0] == "remove_hot_pixels"
    assert "hot_pixels_total" not in replay.steps[0][1]
    assert replay.steps[0][1]["kernel_size"] == 5
    assert "flagged_frames" not in replay.steps[1][1] and "aligned_on" not in replay.steps[1][1]
    assert replay.steps[2] == ("exclude_frames", {"frames": "0", "flagged": True})
    assert Recipe.from_history(result.history) == replay  # records or their dicts
    with pytest.raises(ValueError, match="not a recipe step"):
        Recipe.from_history([{"step": "accumulate", "parameters": {}}])
    with pytest.raises(ValueError, match="region"):
        Recipe.from_history([{"step": "align_frames",
                              "parameters": {"method": "subpixel", "region": "mask of 9 px"}}])
