"""LANS-compatible outputs, for lans2r (R) and LANS users.

``write_lans(result, folder)`` writes, in LANS's layout:

* ``dat/<mass>.dac``: one row per ROI (``i Xi Yi MEANi Poiss_Ei Poiss_%Ei SIZEi PIXELSi
  LWratio dLWratio``) with the ROI's total counts of that mass (whole counts as
  integers, corrected counts in full);
* ``dat/<mass>-z.dat``: the counts of that mass per ROI and plane (frame), as LANS
  writes ion depth profiles ("Display depth profiles in ROI") and lans2r's
  ``load_LANS_summary()`` requires them;
* ``dat/<name>.dac`` and ``dat/<name>-z.dat``: each expression (ratio, fraction...) per
  ROI and per ROI and plane (values ``%.4e``), evaluated from the parsed expression;
* ``mat/<mass>.mat``: ``IM`` (the accumulated image), ``CELLS`` (the ROI image),
  ``xyscale`` (raster, µm), ``noplanes`` and ``vscale``; ``mat/ROIs.mat`` (``Maskimg``)
  and ``mat/xyalign.mat`` (``xyalign``, the translations) as LANS keeps them.

File names are mangled as LANS does: no spaces, ``/`` and ``*`` become ``-``, ``.``
becomes ``d``. lans2r's default (``ion_data_only = TRUE``) reads as masses only the
files named ``^[0-9A-Z]+\\.dac$`` and ``^[0-9A-Z]+-z.dat$``: masses with a lower-case
letter (``28Si``) and all expressions are read only with ``ion_data_only = FALSE``, as
for LANS's own files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._files import atomic_outputs, refuse_existing
from .names import lans_file, lans_name

__all__ = ["write_lans", "lans_name", "DAC_COLUMNS"]

#: The columns of a LANS ``.dac`` file, as lans2r checks them.
DAC_COLUMNS = ("i", "Xi", "Yi", "MEANi", "Poiss_Ei", "Poiss_%Ei", "SIZEi", "PIXELSi",
               "LWratio", "dLWratio")


def _shape_ratios(labels: np.ndarray, n: int) -> np.ndarray:
    """Length-to-width ratio of every ROI (major over minor axis of its inertia ellipse)."""
    from skimage.measure import regionprops

    ratios = np.full(n, np.nan)
    for region in regionprops(labels):
        minor = region.axis_minor_length
        ratios[region.label - 1] = region.axis_major_length / minor if minor > 0 else np.nan
    return ratios


def _number(value: float, template: str) -> str:
    """``value`` in ``template`` (a format spec); NaN as ``NaN``, which R reads as NaN."""
    return "NaN" if not np.isfinite(value) else format(value, template)


def _count_text(value: float) -> str:
    """Counts in full: whole numbers as integers (as LANS writes them), corrected
    (fractional) counts with 12 significant digits, so that ratios of the written sums
    are the ratios of the sums."""
    return _number(float(value), ".12g")


def _dac_text(folder_name: str, name: str, table, pixel_um: float, lw, counts: bool) -> str:
    """A LANS ``.dac`` file: line 1 a comment, line 2 the tab-separated column names
    (``# i`` first, as lans2r's ``read.table(skip = 1, sep = "\\t")`` reads them), then a
    row per ROI."""
    lines = [f"# {folder_name} : {name}", "# " + "\t".join(DAC_COLUMNS)]
    for row in table.itertuples(index=False):
        value, sigma = float(row.value), float(row.sigma)
        relative = 100.0 * sigma / value if value else float("nan")
        cells = [str(int(row.roi)),
                 _number(row.centroid_x_um / pixel_um + 0.5, ".2f"),  # 1-based pixels
                 _number(row.centroid_y_um / pixel_um + 0.5, ".2f")]
        if counts:
            cells += [_count_text(value), _number(sigma, ".2f"), _number(relative, ".2f")]
        else:
            cells += [_number(value, ".4e"), _number(sigma, ".4e"), _number(relative, ".4e")]
        cells += [_number(row.equivalent_diameter_um, ".4f"), str(int(row.n_pixels)),
                  _number(lw[int(row.roi) - 1], ".4f"), "0"]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def _depth_text(folder_name: str, name: str, profile, n_rois: int, counts: bool) -> str:
    """A LANS ``-z.dat`` depth profile, laid out as LANS's ``plot_export_masses_depth``
    writes it and lans2r's ``read_roi_ion_zstack_data_file`` reads it: three header
    lines (skipped), then a row per plane: the plane number (1-based), then value and
    error of ROI 1, ROI 2, ... in that order (lans2r numbers the ROIs by column position),
    tab-separated, no trailing tab."""
    lines = [f"# {folder_name}: {name}",
             "# cell" + "".join(f"\tMEAN{r}\tPoiss_E{r}" for r in range(1, n_rois + 1)),
             # POL is LANS's sign of a trend with depth; 0: not tested here.
             "# plane" + "".join("\tPOL=0\t" for _ in range(n_rois))]
    value_text = _count_text if counts else (lambda v: _number(float(v), ".4e"))
    values = profile.pivot(index="frame", columns="roi", values="value")
    sigmas = profile.pivot(index="frame", columns="roi", values="sigma")
    rois = range(1, n_rois + 1)
    values = values.reindex(columns=rois)
    sigmas = sigmas.reindex(columns=rois)
    for frame in values.index:
        cells = [str(int(frame) + 1)]
        for roi in rois:
            cells += [value_text(values.loc[frame, roi]),
                      _number(float(sigmas.loc[frame, roi]), ".3e")]
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def _sequential(labels: np.ndarray) -> np.ndarray:
    """The ROI image numbered 1..N in the order of its ids: LANS numbers ROIs so, and
    lans2r takes a depth profile's ROI number from its column position. Memory grows
    with the image, not with the largest id."""
    ids, compact = np.unique(labels, return_inverse=True)
    compact = compact.reshape(labels.shape).astype(np.int32)
    return compact if ids.size and ids[0] == 0 else compact + 1


def _expression_nodes(result, expressions) -> list:
    """The parsed expressions to write, in order, without repeats or bare mass labels.

    Given ``expressions`` (text the user wrote, or parsed nodes) are parsed once. By
    default: each ``ratio`` step's parsed expression (``DerivedImage.node``), then the
    expressions of the ROI table, parsed from what the ``roi_table`` step was given (its
    history record), never from the table's display text unless nothing else holds them.
    """
    from ..analysis.expression import Node, parse

    known = list(result.labels)
    if expressions is not None:
        if isinstance(expressions, (str, Node)):
            expressions = [expressions]
        nodes = [parse(expression, known) for expression in expressions]
    else:
        nodes = []
        for derived in result.derived:
            node = getattr(derived, "node", None)
            if node is None:  # built without its node: its text reads back to it
                try:
                    node = parse(derived.expression, known)
                except ValueError:  # not an expression of the masses (a z-score map)
                    continue
            nodes.append(node)
        if result.roi_statistics is not None:
            wanted = [q for q in result.roi_statistics["quantity"].unique() if q not in known]
            given: dict[str, Node] = {}
            for record in result.history:
                if record.name == "roi_table":
                    for text in str(record.parameters.get("expressions", "")).split(";"):
                        if text.strip():
                            node = parse(text, known)
                            given.setdefault(node.text(), node)
            for quantity in wanted:
                try:
                    nodes.append(given[quantity] if quantity in given
                                 else parse(quantity, known))
                except ValueError:  # a row added to the table ('... excess', '... k')
                    continue
    unique: dict[str, object] = {}
    for node in nodes:
        if not node.labels():
            raise ValueError(f"expression {node.text()!r} uses no mass; LANS files hold "
                             "expressions of the masses")
        if node.kind != "label":  # a mass on its own is already written as an ion file
            unique.setdefault(node.text(), node)
    return list(unique.values())


def write_lans(result, folder: str | os.PathLike, *, expressions=None,
               overwrite: bool = False) -> dict[str, Path]:
    """Write an analysed acquisition in LANS's layout under ``folder`` (``dat/``, ``mat/``).

    Per mass, ``dat/<mass>.dac`` (total counts per ROI) and ``dat/<mass>-z.dat`` (counts
    per ROI and plane), so that lans2r's ``load_LANS_summary()`` loads the folder with its
    defaults and its ``calculate_ratios`` gives the ROI table's ratios of summed counts;
    per expression, ``dat/<name>.dac`` and ``dat/<name>-z.dat`` with its values.

    Parameters
    ----------
    result : Acquisition
        With ROIs (``roi_labels``, from a ``segment`` step or drawn); its frames are the
        planes of the depth profiles. ROIs are numbered 1..N in the order of their ids,
        as LANS numbers them (an ROI image with unused ids is renumbered, in all files).
    folder : path-like
        The LANS "cell" folder; ``dat`` and ``mat`` are made inside it.
    expressions : sequence of str or Node, optional
        Ratios and other expressions to write (default: those of the ``ratio`` steps
        and the ROI table). They are evaluated from their parsed form, never from display
        text.
    overwrite : bool
        Replace existing files; otherwise FileExistsError before anything is written.

    Returns
    -------
    dict
        Output name -> path.

    Raises
    ------
    ValueError
        Without ROIs, for an expression that does not parse or uses no mass, or when two
        masses or expressions get the same LANS file name (compared ignoring case), before
        anything is written.
    """
    from scipy.io import savemat

    from ..analysis.accumulate import accumulate
    from ..analysis.expression import Node
    from ..analysis.rois import depth_profile, roi_table

    if result.roi_labels is None:
        raise ValueError(f"{result.name}: no ROIs to export (run a 'segment' step or "
                         "draw ROIs first)")
    folder = Path(folder)
    labels = _sequential(np.asarray(result.roi_labels))
    nodes = _expression_nodes(result, expressions)
    names: dict[str, str] = {}
    for what, text in [*(("mass", label) for label in result.labels),
                       *(("expression", node.text()) for node in nodes)]:
        # compared case-folded: on Windows and macOS '12c' and '12C' are one file
        name = lans_name(text).casefold()
        if name in names:
            raise ValueError(f"{result.name}: {names[name]} and {what} {text!r} would both "
                             f"be written as {lans_name(text)!r} (LANS file names have no "
                             "spaces, '/' and '*' become '-', '.' becomes 'd'); rename one "
                             "or write them separately")
        names[name] = f"{what} {text!r}"
    table = roi_table(result, labels, nodes)
    n = int(labels.max()) if labels.size else 0
    lw = _shape_ratios(labels, n)
    pixel = result.pixel_size_um
    total = accumulate(result)
    texts: dict[str, str] = {}
    for label in result.labels:
        name = lans_name(label)
        texts[lans_file(name, "dac")] = _dac_text(
            folder.name, name, table[table["quantity"] == label], pixel, lw, True)
        # depth_profile parses its expression, which may be a Node already.
        profile = depth_profile(result, labels, Node("label", label))  # type: ignore[arg-type]
        texts[lans_file(name, "depth")] = _depth_text(folder.name, name, profile, n, True)
    for node in nodes:
        name = lans_name(node.text())
        texts[lans_file(name, "dac")] = _dac_text(
            folder.name, name, table[table["quantity"] == node.text()], pixel, lw, False)
        profile = depth_profile(result, labels, node)
        texts[lans_file(name, "depth")] = _depth_text(folder.name, node.text(), profile, n,
                                                 False)
    arrays: dict[str, dict] = {}
    raster = float(result.header.raster_um)
    for index, label in enumerate(result.labels):
        image = np.asarray(total.counts[index], dtype=np.float64)
        finite = image[np.isfinite(image)]
        arrays[lans_file(lans_name(label), "mat")] = {
            "IM": image, "CELLS": labels.astype(np.float64), "xyscale": raster,
            "noplanes": float(result.n_frames),
            "vscale": np.array([[float(finite.min()) if finite.size else 0.0,
                                 float(finite.max()) if finite.size else 0.0]])}
    arrays[lans_file("ROIs", "mat")] = {"Maskimg": labels.astype(np.float64)}
    if result.translations is not None:
        arrays[lans_file("xyalign", "mat")] = {
            "xyalign": np.asarray(result.translations, float)}
    targets = {name: folder / name for name in [*texts, *arrays]}
    refuse_existing(targets.values(), overwrite)  # before any folder is made
    for subfolder in {target.parent for target in targets.values()}:
        subfolder.mkdir(parents=True, exist_ok=True)
    with atomic_outputs(targets, overwrite) as temporary:
        for name, text in texts.items():
            temporary[name].write_text(text, encoding="latin-1", errors="replace")
        for name, variables in arrays.items():
            with open(temporary[name], "wb") as handle:
                savemat(handle, variables, format="5", do_compression=False)
    return targets
