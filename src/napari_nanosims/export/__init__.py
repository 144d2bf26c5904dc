"""Writing results other tools read."""
