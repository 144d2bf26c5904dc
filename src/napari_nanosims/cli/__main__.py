"""``python -m napari_nanosims.cli``: the ``nanosims`` command."""

import sys

from .main import main

sys.exit(main())
