"""The "Correct" tab: detector corrections of one file, per pixel and frame."""

from __future__ import annotations

import warnings

import napari.viewer
from magicgui.widgets import CheckBox, Label

from ...steps.corrections import BACKGROUND, DEAD_TIME, QSA, YIELD
from ._base import FileWidget
from ._common import (
    KIND_CLEANED,
    KIND_CORRECTED,
    LayerAdder,
    acquisition_from_layers,
    layer_state,
    nanosims_info,
    results_for_layers,
    source_layers,
)
from ._controls import control_for, control_value

NO_IONS = "no ion masses in this file (SE only): nothing to correct"


class CorrectionsWidget(FileWidget):
    """Dead time, EM background, QSA and EM yield for the ion channels of one file.

    Runs the correction steps in their order on the cleaned layers (else the raw ones)
    and adds ``"<label> · corrected · <file>"`` float layers that alignment then uses.
    The header's dead time of each channel's detector and the dwell time are shown and
    can be overridden; QSA needs beta and the primary current at the sample.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(viewer, "Apply corrections")
        self.info = Label(label="", value="-")
        self.info.native.setWordWrap(True)
        self.dead_time = CheckBox(label="dead time", value=True, tooltip=DEAD_TIME.help)
        self.dead_times = control_for(DEAD_TIME.parameter("dead_times_ns"))
        self.background = CheckBox(label="EM background", value=False, tooltip=BACKGROUND.help)
        self.qsa = CheckBox(label="QSA", value=False, tooltip=QSA.help)
        # No default beta or current: both start at 0, "not set", as nobody measured them.
        self.beta = control_for(QSA.parameter("beta"))
        self.primary_current = control_for(QSA.parameter("primary_current_pA"))
        self.em_yield = CheckBox(label="EM yield", value=False, tooltip=YIELD.help)
        self.summary = Label(label="", value="")
        self.summary.native.setWordWrap(True)
        self._lay_out(controls=[self.file, self.info, self.dead_time, self.dead_times,
                                self.background, self.qsa, self.beta, self.primary_current,
                                self.em_yield],
                      results=[self.summary])
        self.file.changed.connect(self._show_detectors)
        self._connect()

    def _files_refreshed(self, previous) -> None:
        self._show_detectors()

    def _show_detectors(self, _value=None) -> None:
        """The header's dead time per ion channel's detector, and the dwell time."""
        acquisition = (acquisition_from_layers(self._viewer, self.file.value)
                       if self.file.value is not None else None)
        if acquisition is None:
            self.info.value = "-"
            return
        if not acquisition.ion_channels:
            self.info.value = NO_IONS
            return
        parts = [f"{c.label}: {c.detector or '?'}, "
                 + (f"{c.dead_time_ns:g} ns" if c.dead_time_ns is not None else "no EM")
                 for c in acquisition.ion_channels]
        dwell = acquisition.channels[0].dwell_time_us
        self.info.value = ("Detectors: " + "; ".join(parts)
                           + f". Dwell time {dwell:g} µs per pixel.")

    def steps(self) -> list[tuple]:
        """The (step, parameters) pairs the controls ask for, in the required order."""
        chosen = []
        if self.dead_time.value or self.background.value or self.qsa.value \
                or self.em_yield.value:
            chosen.append((DEAD_TIME, {"dead_times_ns": control_value(
                DEAD_TIME.parameter("dead_times_ns"), self.dead_times)}))
        if self.background.value:
            chosen.append((BACKGROUND, {}))
        if self.qsa.value:
            beta = control_value(QSA.parameter("beta"), self.beta)
            current = control_value(QSA.parameter("primary_current_pA"), self.primary_current)
            if beta is None:
                raise ValueError("QSA needs beta measured for your instrument (0.5 in the "
                                 "Poisson model, 0.6-1.0 measured); it has no default")
            if current is None:
                raise ValueError("QSA needs the primary current at the sample (pA); the "
                                 "header's value is not it")
            chosen.append((QSA, {"beta": beta, "primary_current_pA": current}))
        if self.em_yield.value:
            chosen.append((YIELD, {}))
        return chosen

    def run(self, _value=None):
        """Apply the chosen corrections in a worker; returns the worker (None if not started)."""
        from napari.utils.notifications import show_warning

        if self.file.value is None:
            show_warning("Open a NanoSIMS .im file first (no file chosen).")
            return None
        try:
            chosen = self.steps()
        except ValueError as exc:
            show_warning(str(exc))
            return None
        if not chosen:
            show_warning("Tick at least one correction.")
            return None
        acquisition = acquisition_from_layers(self._viewer, self.file.value, (KIND_CLEANED,))
        if acquisition is None:
            show_warning("Some channel layers of this file were deleted; open it again.")
            return None
        if not acquisition.ion_channels:
            show_warning(f"{acquisition.name}: {NO_IONS}.")
            return None
        layers = source_layers(self._viewer, self.file.value, (KIND_CLEANED,))
        read_from = {c.index: layers[c.index] for c in acquisition.ion_channels}
        sources = {c.index: (nanosims_info(layers[c.index]), layer_state(layers[c.index]))
                   for c in acquisition.ion_channels}

        def job():
            result = acquisition
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for step, parameters in chosen:
                    result = yield from step.iterate(result, **parameters)
            return result, results_for_layers(sources, result, KIND_CORRECTED,
                                              source=acquisition), [
                str(w.message) for w in caught]

        return self._runner.start(job(), description=f"Correcting: {acquisition.name}",
                                  on_returned=lambda returned: self._add_layers(returned,
                                                                                read_from))

    def _add_layers(self, returned, read_from=None) -> None:
        from napari.utils.notifications import show_warning

        result, tuples, messages = returned
        for message in messages:
            show_warning(message)
        applied = [record.name.replace("_", " ") for record in result.history
                   if record.name in (DEAD_TIME.name, BACKGROUND.name, QSA.name, YIELD.name)]

        def done():
            if not self._closed:
                self.summary.value = "applied: " + ", ".join(applied)
        LayerAdder(self._viewer, tuples, on_done=done, alive=lambda: not self._closed,
                   sources=read_from).start()
