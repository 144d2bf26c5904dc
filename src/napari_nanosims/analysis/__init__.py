"""Analysis after cleaning and correcting: accumulation (and, later, ratios and ROIs)."""
