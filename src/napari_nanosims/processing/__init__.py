"""Processing steps: hot pixels, frame alignment, summing, recipes."""
