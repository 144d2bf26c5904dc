"""Peak switching: the channels of a file whose cycles scan two (or more) B fields.

Layout (``docs/file-format.md``, "Peak switching"): Mask_nano's ``nb_bfield`` is the
number of B fields; the mass table lists the species of every B field, field by field
(the same number per field: ``n_masses / nb_bfield``); each B-field record has its own
trolley table, whose valid trolleys name the table position of the mass they counted.
Every stored plane holds the images of every table mass, i.e. one scan per B field. A
detector that switches counts one species in one field and another in the other; a
detector that does not switch (and the SE detector) counts the same species in every
field, which therefore appears once per field in the table.

This module turns that into one channel per species: a species listed in several fields
on the same detector is merged into one channel, and the frames are the scans in time
order (stored plane ``p``, field ``b`` -> frame ``p * nb_bfield + b``), so a channel
counted in one of two fields has every second frame.
"""

from __future__ import annotations

import numpy as np

from ..model.channels import normalise_label
from ..model.header import SE_TROLLEY_SLOT, detector_name

__all__ = ["switched_layout"]


def _slot(record, trolleys, k: int, local: int) -> int:
    """Trolley slot of table mass ``k`` (``local``-th of its field) in its field."""
    for t, trolley in enumerate(trolleys):
        if trolley.m_nFlagTrolleyValided == 1 and trolley.m_nNum in (k, local):
            return t
    slot = record._not_in_spec
    return int(slot) if 0 <= slot <= 12 else 0


def switched_layout(tab_mass, bfields, old_layout: bool, n_planes: int) -> dict:
    """The channels of a peak-switched file.

    Returns
    -------
    dict
        ``labels``, ``masses_amu``, ``slots``, ``detectors``, ``se_index``,
        ``dwell_times_us`` and ``channel_frames`` per channel; ``source``: (fields,
        channels) int array, the table position of each channel in each field (-1 where
        it was not counted); ``fields``: the B field of each table mass.
    """
    n_fields = len(bfields)
    per_field = len(tab_mass) // n_fields
    keys: list[tuple[int, str]] = []
    info: list[dict] = []
    source_rows: list[dict[int, int]] = [dict() for _ in range(n_fields)]
    fields = []
    for k, record in enumerate(tab_mass):
        field, local = divmod(k, per_field)
        fields.append(field)
        slot = _slot(record, bfields[field].m_TrolleyTab, k, local)
        label = " ".join(record.mass.string.split())
        is_se = slot == SE_TROLLEY_SLOT or (record.mass_amu == 0.0 and not label)
        key = (SE_TROLLEY_SLOT if is_se else slot, "se" if is_se else normalise_label(label))
        if key not in keys:
            keys.append(key)
            info.append(dict(label="SE" if is_se else label, amu=float(record.mass_amu),
                             slot=key[0],
                             detector="SE" if is_se else detector_name(
                                 slot, record.detecteur, old_layout),
                             dwell=float(bfields[field].m_nCTperPixel), fields=set()))
        channel = keys.index(key)
        info[channel]["fields"].add(field)
        source_rows[field][channel] = k
    source = np.full((n_fields, len(keys)), -1, dtype=np.int64)
    for field, row in enumerate(source_rows):
        for channel, k in row.items():
            source[field, channel] = k
    frames: list[tuple[int, ...] | None] = []
    for item in info:
        if len(item["fields"]) == n_fields:
            frames.append(None)
        else:
            frames.append(tuple(p * n_fields + b for p in range(n_planes)
                                for b in sorted(item["fields"])))
    se_index = next((c for c, item in enumerate(info) if item["label"] == "SE"), None)
    return dict(labels=tuple(i["label"] for i in info),
                masses_amu=tuple(i["amu"] for i in info),
                slots=tuple(i["slot"] for i in info),
                detectors=tuple(i["detector"] for i in info), se_index=se_index,
                dwell_times_us=tuple(i["dwell"] for i in info),
                channel_frames=tuple(frames), source=source, fields=tuple(fields))
