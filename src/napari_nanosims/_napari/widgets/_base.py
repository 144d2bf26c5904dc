"""The base of the dock widgets that work on one opened file."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, ProgressBar, PushButton

from ._common import acquisition_choices
from ._controls import compact_choices
from ._runner import WorkerRunner


class FileWidget(Container):
    """A file chooser, Run and Cancel buttons with one worker at a time, and closing.

    Subclasses build their controls, ``extend`` the container (with ``file``,
    ``run_button``, ``cancel_button`` and ``progress`` where they want them), define
    ``run`` and call :meth:`_connect` at the end of their ``__init__``.
    """

    def __init__(self, viewer, run_text: str):
        super().__init__(labels=True)
        self._viewer = viewer
        self._closed = False
        self.file = ComboBox(label="file", choices=self._file_choices, nullable=True)
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel")
        self.progress = ProgressBar(label="progress")

    def _connect(self) -> None:
        self._runner = WorkerRunner(self.run_button, self.cancel_button, self.progress)
        compact_choices(self)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self._runner.cancel)
        self._viewer.layers.events.inserted.connect(self._refresh_files)
        self._viewer.layers.events.removed.connect(self._refresh_files)
        self.native.destroyed.connect(self._on_destroyed)
        self._refresh_files()

    def _file_choices(self, _widget=None):
        return acquisition_choices(self._viewer)

    def _refresh_files(self, _event=None) -> None:
        """Offer the opened files; pick the first when none is chosen yet."""
        if self._closed:
            return
        try:
            previous = self.file.value
            self.file.reset_choices()
            available = [choice for choice in self.file.choices if choice is not None]
            if self.file.value is None and available:
                self.file.value = available[0]
            self._files_refreshed(previous)
        except RuntimeError:  # the Qt side is gone (the viewer is closing)
            self._closed = True

    def _files_refreshed(self, previous) -> None:
        """Called after the file list changed (``previous``: the file chosen before)."""

    def run(self, _value=None):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _on_destroyed(self, _object=None) -> None:
        self._closed = True
        self._runner.cancel()
