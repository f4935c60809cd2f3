"""`python -m attnlab ...` runs the same command line as the `attnlab` script."""

import sys

from .cli import main

sys.exit(main())
