"""Which trolley slot (detector) each mass of a written ``.im`` file goes to, per B field.

Split from :mod:`.writer` (the module-size rule); ``write_im`` is the only user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SE_SLOT = 8
ION_SLOTS = (1, 2, 3, 4, 5, 10, 11)  # EM1-EM5, EM6, EM7: trolley index = slot
LEGACY_ION_SLOTS = (1, 2, 3, 4, 5)  # files before release 4108 have EM1-EM5 only


def _is_se(label: str, amu: float) -> bool:
    return label.strip().upper() in ("SE", "ESI") or amu == 0


def _detector_slot(name: Any, legacy: bool) -> int:
    """The trolley slot of a detector named ``'EM1'``..``'EM7'`` or ``'SE'``."""
    key = str(name).strip().upper()
    slots = {f"EM{k}": k for k in range(1, 6)}
    if not legacy:
        slots.update(EM6=10, EM7=11)
    slots.update(SE=SE_SLOT, ESI=SE_SLOT)
    if key not in slots:
        raise ValueError(f"detectors: {name!r} is not a detector of this layout; use one of "
                         f"{', '.join(sorted(k for k in slots if k != 'ESI'))}")
    return slots[key]


def _trolley_slots(labels: Sequence[str], masses_amu: Sequence[float],
                   legacy: bool = False,
                   detectors: Sequence[str | None] | None = None) -> list[int]:
    """The trolley slot of each mass (1-5 EM1-EM5, 8 SE, 10 and 11 EM6 and EM7).

    ``detectors`` names the detector of each mass; masses without one (None, or no
    ``detectors`` at all) take the free electron multipliers in order, as the Cameca
    software assigns them, and SE its slot 8.
    """
    if detectors is None:
        detectors = [None] * len(labels)
    if len(detectors) != len(labels):
        raise ValueError(f"detectors: need one per mass ({len(labels)}), got {len(detectors)}")
    chosen = [None if name is None else _detector_slot(name, legacy) for name in detectors]
    for k, (label, amu, slot) in enumerate(zip(labels, masses_amu, chosen, strict=True)):
        if slot is not None and (slot == SE_SLOT) != _is_se(label, amu):
            raise ValueError(f"detectors: mass {k} ({label!r}, {amu} amu) cannot be on "
                             f"{detectors[k]!r}: SE (and only SE, 0 amu) is on the SE "
                             f"detector")
    taken = [slot for slot in chosen if slot is not None]
    if len(set(taken)) != len(taken):
        raise ValueError(f"detectors: each detector holds one mass; got {list(detectors)}")
    free = iter(slot for slot in (LEGACY_ION_SLOTS if legacy else ION_SLOTS)
                if slot not in taken)
    slots = []
    for label, amu, slot in zip(labels, masses_amu, chosen, strict=True):
        if slot is None:
            slot = SE_SLOT if _is_se(label, amu) else next(free, 0)
        slots.append(slot)
    return slots


def _field_slots(labels, masses_amu, legacy, detectors, fields) -> list[int]:
    """Trolley slots, assigned within each B field (a detector serves every field)."""
    if len(set(fields)) == 1:
        return _trolley_slots(labels, masses_amu, legacy, detectors)
    if detectors is not None and len(detectors) != len(labels):
        raise ValueError(f"detectors: need one per mass ({len(labels)}), got {len(detectors)}")
    if detectors is None:
        detectors = [None] * len(labels)
    slots = [0] * len(labels)
    for field in sorted(set(fields)):
        members = [k for k, f in enumerate(fields) if f == field]
        chosen = _trolley_slots([labels[k] for k in members],
                                [masses_amu[k] for k in members], legacy,
                                [detectors[k] for k in members])
        for k, slot in zip(members, chosen, strict=True):
            slots[k] = slot
    return slots
