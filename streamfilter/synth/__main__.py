"""``python -m streamfilter.synth DIR [options]``: write a simulated data set (the same as
``streamfilter synth``; the options are in :mod:`streamfilter.cli.synth`)."""

import sys

from ..cli.synth import main

sys.exit(main())
