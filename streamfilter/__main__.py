"""``python -m streamfilter``: the same as the ``streamfilter`` command."""

import sys

from .cli import main

sys.exit(main())
