"""python -m ddpm_utils {train,sample,evaluate,export} ...: the command line (ddpm_utils.extras.cli)."""

import sys

from .extras.cli import main

if __name__ == "__main__":
    sys.exit(main())
