"""The napari plugin: reader, sample data and dock widgets.

Only ``_napari.widgets`` imports Qt; the reader and sample data are plain Python
and are imported by napari through the manifest when a command runs.
"""
