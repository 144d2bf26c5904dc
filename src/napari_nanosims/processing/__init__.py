"""The algorithms, arrays in and arrays out: hot pixels, frame alignment, detector-correction
formulas. Nothing here knows steps, recipes, acquisitions' histories or output files."""
