"""Batch processing: one file through a recipe (``single``), many files on dask (``pool``)."""
