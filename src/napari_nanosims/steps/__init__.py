"""The steps: the one place that knows every step, its parameters and how recipes run them.

A step takes an :class:`~napari_nanosims.model.Acquisition` and returns a new one with the
step in its history; the algorithms it calls live in ``processing/`` and ``analysis/``,
the writers in ``export/``.
"""
