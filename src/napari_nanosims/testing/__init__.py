"""Helpers for tests, benchmarks and docs: the scene simulator (not used by the library)."""
