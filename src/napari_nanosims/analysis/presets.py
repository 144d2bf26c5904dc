"""Presets for the common isotope labels: which ions, which ratio and fraction, and the
natural (unlabelled) values with their sources.

The natural values come from the international reference materials in
:data:`napari_nanosims.STANDARDS` (ratio R of the minor over the major isotope; two-isotope
fraction F = R / (1 + R)). For comparison, IUPAC's representative abundances (Rosman &
Taylor 1998, Pure Appl. Chem. 70:217) are listed with each preset.
"""

from __future__ import annotations

import dataclasses

__all__ = ["LabelPreset", "LABEL_PRESETS"]


@dataclasses.dataclass(frozen=True)
class LabelPreset:
    """One way to measure a label.

    Attributes
    ----------
    name : str
        Key in :data:`LABEL_PRESETS`.
    ratio : str
        Expression of the ion ratio (minor over major isotope, per atom).
    fraction : str or None
        Expression of the atom fraction of the minor isotope (None when no fraction is
        meant, as for C/N).
    natural_ratio, natural_fraction : float or None
        Unlabelled values of ``ratio`` and ``fraction``.
    standard : str or None
        The reference material (key of :data:`napari_nanosims.STANDARDS`).
    source : str
        Where the natural value comes from.
    iupac_fraction : float or None
        IUPAC's representative atom fraction of the minor isotope among all isotopes of
        the element (Rosman & Taylor 1998), for comparison.
    note : str
        What to watch.
    """

    name: str
    ratio: str
    fraction: str | None
    natural_ratio: float | None
    natural_fraction: float | None
    standard: str | None
    source: str
    iupac_fraction: float | None = None
    note: str = ""


def _preset(name, ratio, fraction, standard, source, iupac=None, note=""):
    from .ratios import STANDARDS

    natural = STANDARDS[standard] if standard else None
    return LabelPreset(name, ratio, fraction, natural,
                       natural / (1 + natural) if natural is not None and fraction else None,
                       standard, source, iupac, note)


_CRAIG = "Craig (1957) Geochim. Cosmochim. Acta 12:133 (VPDB 13C/12C = 0.0112372)"
_JUNK = "Junk & Svec (1958) Geochim. Cosmochim. Acta 14:234 (AIR 15N/14N = 0.0036765)"


def _presets() -> dict[str, LabelPreset]:
    presets = [
        _preset("13C", "13C/12C", "13C/(12C+13C)", "VPDB 13C/12C", _CRAIG, 0.0107,
                "atomic C- ions"),
        _preset("13C via C2", "12C13C/(2*12C2)", "12C13C/(12C13C+2*12C2)", "VPDB 13C/12C",
                _CRAIG, 0.0107, "12C13C/12C2 = 2 x 13C/12C for random mixing of the two "
                "atoms; the fraction is r/(2 + r) of r = 12C13C/12C2"),
        _preset("13C via CN", "13C14N/12C14N", "13C14N/(12C14N+13C14N)", "VPDB 13C/12C",
                _CRAIG, 0.0107, "13C14N shares mass 27 with 12C15N: resolve them, or do "
                "not label 15N at the same time"),
        _preset("15N via CN", "12C15N/12C14N", "12C15N/(12C14N+12C15N)", "AIR 15N/14N",
                _JUNK, 0.00364, "N does not form N- ions: it is measured as CN-"),
        _preset("2H", "2H/1H", "2H/(1H+2H)", "VSMOW 2H/1H",
                "Hagemann, Nief & Roth (1970) Tellus 22:712 (VSMOW 2H/1H = 0.00015576)",
                0.000115, "the H- yield depends on the matrix: calibrate with a standard"),
        _preset("18O", "18O/16O", "18O/(16O+18O)", "VSMOW 18O/16O",
                "Baertschi (1976) Earth Planet. Sci. Lett. 31:341 (VSMOW 18O/16O = "
                "0.0020052)", 0.00205, "the two-isotope fraction leaves 17O out"),
        _preset("34S", "34S/32S", "34S/(32S+34S)", "VCDT 34S/32S",
                "Ding et al. (2001) Geochim. Cosmochim. Acta 65:2433 (VCDT 34S/32S = "
                "0.0441626)", 0.0425, "delta34S against VCDT: calibrate(..., "
                "reference='VCDT 34S/32S')"),
        LabelPreset("C/N", "12C14N/12C2", None, None, None, standard=None,
                    source="no natural value: CN-/C2- yields depend on the matrix; "
                    "calibrate against a standard of known C/N (e.g. Alleon et al. 2015)",
                    note="an elemental ratio, not an isotope label"),
    ]
    return {preset.name: preset for preset in presets}


#: The presets by name: '13C', '13C via C2', '13C via CN', '15N via CN', '2H', '18O',
#: '34S', 'C/N'.
LABEL_PRESETS = _presets()
