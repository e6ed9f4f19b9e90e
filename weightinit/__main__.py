"""``python -m weightinit`` is the ``weightinit`` command."""

import sys

from .cli import main

sys.exit(main())
