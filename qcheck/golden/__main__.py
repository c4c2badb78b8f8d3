"""``python -m qcheck.golden [--check] [--dir DIR]``."""

import sys

from qcheck.golden.cli import main

sys.exit(main())
