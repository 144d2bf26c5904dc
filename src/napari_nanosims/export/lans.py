"""LANS-compatible outputs, for lans2r (R) and LANS users.

``write_lans(result, folder)`` writes, in LANS's layout:

* ``dat/<name>.dac``: one row per ROI (``i Xi Yi MEANi Poiss_Ei Poiss_%Ei SIZEi PIXELSi
  LWratio dLWratio``), one file per mass (total counts, integers) and per expression
  (values, ``%.4e``);
* ``dat/<name>-z.dat``: each expression per ROI and frame (depth profile);
* ``mat/<mass>.mat``: ``IM`` (the accumulated image), ``CELLS`` (the ROI image),
  ``xyscale`` (raster, µm), ``noplanes`` and ``vscale``; ``mat/ROIs.mat`` (``Maskimg``)
  and ``mat/xyalign.mat`` (``xyalign``, the translations) as LANS keeps them.

File names are mangled as LANS does: no spaces, ``/`` and ``*`` become ``-``, ``.``
becomes ``d``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .ometiff import atomic_outputs

__all__ = ["write_lans", "lans_name", "DAC_COLUMNS"]

#: The columns of a LANS ``.dac`` file, as lans2r checks them.
DAC_COLUMNS = ("i", "Xi", "Yi", "MEANi", "Poiss_Ei", "Poiss_%Ei", "SIZEi", "PIXELSi",
               "LWratio", "dLWratio")


def lans_name(text: str) -> str:
    """A mass label or expression as a LANS file name (``'12C 15N/12C 14N'`` ->
    ``'12C15N-12C14N'``)."""
    name = "".join(str(text).split())
    return name.replace("/", "-").replace("*", "-").replace(".", "d")


def _shape_ratios(labels: np.ndarray, n: int) -> np.ndarray:
    """Length-to-width ratio of every ROI (major over minor axis of its inertia ellipse)."""
    from skimage.measure import regionprops

    ratios = np.full(n, np.nan)
    for region in regionprops(labels):
        minor = region.axis_minor_length
        ratios[region.label - 1] = region.axis_major_length / minor if minor > 0 else np.nan
    return ratios


def _dac_text(folder_name: str, name: str, table, pixel_um: float, lw, integer: bool) -> str:
    lines = [f"# {folder_name} : {name}", "# " + "\t".join(DAC_COLUMNS)]
    for row in table.itertuples(index=False):
        value, sigma = float(row.value), float(row.sigma)
        relative = 100.0 * sigma / value if value else float("nan")
        cells = [str(int(row.roi)),
                 f"{row.centroid_x_um / pixel_um + 0.5:.2f}",  # 1-based pixel centroid
                 f"{row.centroid_y_um / pixel_um + 0.5:.2f}"]
        if integer:
            cells += [f"{int(round(value))}", f"{int(round(sigma))}", f"{relative:.2f}"]
        else:
            cells += [f"{value:.4e}", f"{sigma:.4e}", f"{relative:.4e}"]
        ratio = lw[int(row.roi) - 1]
        cells += [f"{row.equivalent_diameter_um:.4f}", str(int(row.n_pixels)),
                  f"{ratio:.4f}", "0"]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def _depth_text(folder_name: str, expression: str, profile, rois) -> str:
    lines = [f"# {folder_name}: {expression}",
             "# cell\t" + "\t".join(f"MEAN{r}\tPoiss_E{r}" for r in rois),
             "# plane\t" + "\t".join("POL=0" for _ in rois)]
    table = profile.pivot(index="frame", columns="roi")
    for frame in table.index:
        cells = [str(int(frame) + 1)]
        for roi in rois:
            cells += [f"{table.loc[frame, ('value', roi)]:.3e}",
                      f"{table.loc[frame, ('sigma', roi)]:.3e}"]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def write_lans(result, folder: str | os.PathLike, *, expressions=None,
               overwrite: bool = False) -> dict[str, Path]:
    """Write an analysed acquisition in LANS's layout under ``folder`` (``dat/``, ``mat/``).

    Parameters
    ----------
    result : Acquisition
        With ROIs (``roi_labels``, from a ``segment`` step or drawn); its frames give the
        depth profiles.
    folder : path-like
        The LANS "cell" folder; ``dat`` and ``mat`` are made inside it.
    expressions : sequence of str, optional
        Ratios and other expressions to write (default: those of the ``ratio`` steps
        and the ROI table).
    overwrite : bool
        Replace existing files; otherwise FileExistsError before anything is written.

    Returns
    -------
    dict
        Output name -> path.
    """
    from scipy.io import savemat

    from ..analysis.accumulate import accumulate
    from ..analysis.rois import depth_profile, roi_table

    if result.roi_labels is None:
        raise ValueError(f"{result.name}: no ROIs to export (run a 'segment' step or "
                         "draw ROIs first)")
    folder = Path(folder)
    labels = np.asarray(result.roi_labels, dtype=np.int32)
    if expressions is None:
        expressions = [d.expression for d in result.derived]
        if result.roi_statistics is not None:
            expressions += [q for q in result.roi_statistics["quantity"].unique()
                            if q not in result.labels and q not in expressions]
    expressions = list(dict.fromkeys(expressions))
    table = roi_table(result, labels)
    n = int(labels.max()) if labels.size else 0
    lw = _shape_ratios(labels, n)
    pixel = result.pixel_size_um
    total = accumulate(result)
    rois = sorted(int(r) for r in table["roi"].unique())
    texts: dict[str, str] = {}
    for label in result.labels:
        texts[f"dat/{lans_name(label)}.dac"] = _dac_text(
            folder.name, lans_name(label), table[table["quantity"] == label], pixel, lw, True)
    for expression in expressions:
        one = roi_table(result, labels, [expression])
        part = one[~one["quantity"].isin(result.labels)]
        name = lans_name(expression)
        texts[f"dat/{name}.dac"] = _dac_text(folder.name, name, part, pixel, lw, False)
        profile = depth_profile(result, labels, expression)
        texts[f"dat/{name}-z.dat"] = _depth_text(folder.name, expression, profile, rois)
    arrays: dict[str, dict] = {}
    raster = float(result.header.raster_um)
    for index, label in enumerate(result.labels):
        image = np.asarray(total.counts[index], dtype=np.float64)
        finite = image[np.isfinite(image)]
        arrays[f"mat/{lans_name(label)}.mat"] = {
            "IM": image, "CELLS": labels.astype(np.float64), "xyscale": raster,
            "noplanes": float(result.n_frames),
            "vscale": np.array([[float(finite.min()) if finite.size else 0.0,
                                 float(finite.max()) if finite.size else 0.0]])}
    arrays["mat/ROIs.mat"] = {"Maskimg": labels.astype(np.float64)}
    if result.translations is not None:
        arrays["mat/xyalign.mat"] = {"xyalign": np.asarray(result.translations, float)}
    targets = {name: folder / name for name in [*texts, *arrays]}
    existing = [str(p) for p in targets.values() if os.path.lexists(p)]
    if existing and not overwrite:
        raise FileExistsError(f"LANS outputs exist (use --overwrite to replace): "
                              f"{', '.join(existing)}")
    (folder / "dat").mkdir(parents=True, exist_ok=True)
    (folder / "mat").mkdir(parents=True, exist_ok=True)
    with atomic_outputs(targets, overwrite) as temporary:
        for name, text in texts.items():
            temporary[name].write_text(text, encoding="latin-1", errors="replace")
        for name, variables in arrays.items():
            with open(temporary[name], "wb") as handle:
                savemat(handle, variables, format="5", do_compression=False)
    return targets
