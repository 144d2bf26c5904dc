"""Helpers for tests, benchmarks and docs (not used by the library).

``simulate`` makes scenes with known drift and ground truth; ``factory`` writes synthetic
``.im`` files through the library's writer (``make_im``, shared by the tests as the
``im_factory`` fixture).
"""
