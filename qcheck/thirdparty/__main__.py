"""``python -m qcheck.thirdparty``: grade the third-party adapters, write ``reports/thirdparty.md``."""

from __future__ import annotations

import sys

from qcheck.thirdparty.report_run import main

sys.exit(main())
