"""Process one file with a recipe and write its outputs and a replayable record."""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..export._files import atomic_outputs, refuse_existing, remove_stale_partials
from ..export.names import (
    class_outputs,
    export_outputs,
    ratio_outputs,
    roi_outputs,
    run_outputs,
)
from ..export.ometiff import json_ready, software_versions, write_acquisition_tiffs
from ..export.ratio import write_derived
from ..model import Acquisition
from ..steps.progress import run_to_completion, should_stop
from ..steps.recipe import Recipe, RecipeCancelled, iter_run_recipe
from ..steps.registry import STEPS

__all__ = ["process_file", "processing_record", "confine_exports"]


def processing_record(acquisition: Acquisition, recipe: Recipe, paths: dict) -> dict[str, Any]:
    """The JSON record of a processed file: the recipe itself plus what came out.

    Loading it with :meth:`Recipe.load` gives back the recipe (the other keys are
    ignored), so ``nanosims process FILE --recipe <record>`` reproduces the outputs.
    """
    record = recipe.to_dict()
    header = acquisition.header
    hot = acquisition.hot_pixels
    hot_per_frame = (hot.reshape(hot.shape[0], -1).sum(axis=1) if hot is not None else None)
    aligned_on = next((r.parameters.get("aligned_on") for r in acquisition.history
                       if r.name == "align_frames"), None)
    record.update({
        "input": str(Path(acquisition.path or header.path).resolve()),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "software": software_versions(),
        "history": json_ready(acquisition.history_dicts()),
        "channels": [{"label": c.label, "mass_amu": c.mass_amu, "detector": c.detector,
                      "kind": c.kind} for c in acquisition.channels],
        "pixel_size_um": acquisition.pixel_size_um,
        "image_shape_px": [header.height, header.width],
        "image_size_um": [header.height * acquisition.pixel_size_um,
                          header.width * acquisition.pixel_size_um],
        "alignment_channel": aligned_on,
        "translations_px": json_ready(acquisition.translations),
        "translations_axes": ["rows (y)", "columns (x)"],
        "hot_pixels_per_frame": json_ready(hot_per_frame),
        "hot_pixels_total": int(hot.sum()) if hot is not None else None,
        "outputs": {key: str(path) for key, path in paths.items()},
        "header": json_ready(header.to_dict()),
    })
    return record


def _inside(root: Path, folder, step: str) -> Path:
    """``folder`` (an export step's) as a folder inside ``root``; ValueError if it is not."""
    text = os.fspath(folder)
    where = (f"recipe step {step}: folder {text!r} is outside the output folder {root}; "
             "an export step's folder must be a sub-folder of the output folder "
             "(--out), given relative to it")
    if "\0" in text:
        raise ValueError(f"recipe step {step}: folder {text!r} holds a NUL character")
    if os.path.isabs(text) or Path(text).anchor:
        raise ValueError(where.replace("is outside", "is an absolute path, not inside", 1))
    # resolve() follows symbolic links as far as they exist, so a link inside the output
    # folder that points elsewhere is caught as well as '..'.
    target = (root / text).resolve()
    if target != root and root not in target.parents:
        raise ValueError(where)
    return target


def confine_exports(recipe: Recipe, folder, overwrite: bool = False) -> Recipe:
    """The recipe with every export step writing inside the output ``folder``.

    Recipes come from other people: an export step's ``folder`` is read as a sub-folder
    of the run's output folder (empty: the output folder itself), and one that is
    absolute or resolves outside it (``..``, a symbolic link pointing out) is refused.

    Parameters
    ----------
    recipe : Recipe
        The recipe as given.
    folder : path-like
        The run's output folder (``--out``, else the input's folder).
    overwrite : bool
        The run replaces files (``--overwrite``): so do its export steps.

    Returns
    -------
    Recipe
        The export steps with absolute ``folder`` (symbolic links resolved) and
        ``overwrite``; the other steps as they were.

    Raises
    ------
    ValueError
        Naming the step and the folder, before anything is done.
    """
    root = Path(folder).resolve()
    steps = []
    for name, parameters in recipe.steps:
        if name.startswith("write_"):
            parameters = dict(parameters)
            parameters["folder"] = os.fspath(_inside(root, parameters.get("folder") or "",
                                                     name))
            parameters["overwrite"] = bool(parameters.get("overwrite")) or overwrite
        steps.append((name, parameters))
    return Recipe(tuple(steps), recipe.roll_data)


def _step_outputs(path, out_dir, recipe: Recipe) -> list[Path]:
    """The files the recipe's ratio, ROI and export steps will write, as far as they are
    known before it runs (the export steps' folders set by :func:`confine_exports`)."""
    planned: list[Path] = []
    for name, parameters in recipe.steps:
        if name == "ratio":
            expression = parameters.get("expression", STEPS["ratio"].defaults()["expression"])
            planned += ratio_outputs(path, out_dir, expression).values()
        elif name == "roi_table":
            planned += roi_outputs(path, out_dir).values()
        elif name == "compare_classes":
            planned += class_outputs(path, out_dir).values()
        else:
            planned += export_outputs(name, Path(path).stem, parameters.get("folder", ""))
    return planned


def iter_process_file(path, recipe: Recipe, out_dir=None, *, overwrite: bool = False,
                      cancel=None):
    """Generator form of :func:`process_file`: yields each step's
    :class:`~napari_nanosims.steps.progress.Progress`; returns ``(acquisition, paths)``."""
    paths = run_outputs(path, out_dir,
                        aligned=any(name == "align_frames" for name, _ in recipe.steps))
    folder = paths["record"].parent
    as_given = recipe  # the record keeps it: replayed elsewhere, exports follow --out
    recipe = confine_exports(recipe, folder, overwrite)
    # Every output that can be named now is checked now, before any work is done.
    refuse_existing([*paths.values(), *_step_outputs(path, out_dir, recipe)], overwrite)
    acquisition = yield from iter_run_recipe(path, recipe, cancel)
    if should_stop(cancel):  # told to stop while the last step ran: write nothing
        raise RecipeCancelled(f"{acquisition.name}: cancelled before writing")
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder)
    record = processing_record(acquisition, as_given, paths)
    # Everything is written under temporary names first and then moved into place, so an
    # interruption (SIGINT, SIGTERM, an error) leaves no half-written file under a final name.
    with atomic_outputs(paths, overwrite) as temporary:
        write_acquisition_tiffs(acquisition, {kind: temporary[kind]
                                              for kind in ("sums", "variance", "stack")})
        temporary["record"].write_text(json.dumps(record, indent=2, ensure_ascii=False))
    if acquisition.roi_statistics is not None:
        paths.update(_write_rois(acquisition, path, out_dir, overwrite))
    if acquisition.class_statistics is not None:
        targets = class_outputs(path, out_dir)
        with atomic_outputs(targets, overwrite) as temporary:
            acquisition.class_statistics.to_csv(temporary["class table"], index=False)
        paths.update(targets)
    for number, derived in enumerate(acquisition.derived, start=1):
        written = write_derived(derived, ratio_outputs(path, out_dir, derived.expression),
                                overwrite=overwrite)
        paths.update({f"ratio {number} {key}": value for key, value in written.items()})
    return acquisition, paths


def _write_rois(acquisition, path, out_dir, overwrite: bool) -> dict:
    """``<stem>_rois.tif`` (the label image) and ``<stem>_roi_table.csv``."""
    import tifffile

    targets = roi_outputs(path, out_dir)
    with atomic_outputs(targets, overwrite) as temporary:
        tifffile.imwrite(temporary["rois"], acquisition.roi_labels.astype(np.int32))
        acquisition.roi_statistics.to_csv(temporary["roi table"], index=False)
    return targets


def process_file(path, recipe: Recipe, out_dir=None, *, overwrite: bool = False,
                 progress=None, cancel=None):
    """Run ``recipe`` on one ``.im`` file and write sums, stack and record.

    Parameters
    ----------
    path : str or path-like
        The ``.im`` file (opened read-only).
    recipe : Recipe
        The steps to run.
    out_dir : path-like, optional
        Output folder (created when needed); default: the input's folder.
    overwrite : bool
        Replace existing outputs; otherwise existing outputs raise FileExistsError
        before any work is done.
    progress : callable, optional
        ``progress(step, done, total)``.
    cancel : callable or threading.Event, optional
        See :func:`napari_nanosims.run_recipe`.

    Returns
    -------
    (Acquisition, dict)
        The processed acquisition and the paths written (``sums``, ``stack``, ``record``).
        The OME-TIFFs hold raw counts as uint32 (float32 after sub-pixel shifts), axes
        CYX (sums) and TCYX (stack), pixel size in µm, channel names = mass labels.
    """
    return run_to_completion(
        iter_process_file(path, recipe, out_dir, overwrite=overwrite, cancel=cancel),
        None if progress is None else lambda value: progress(*value.as_tuple()))
