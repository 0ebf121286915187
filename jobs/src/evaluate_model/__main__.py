"""Evaluate: `python -m evaluate_model --task T --model DIR --data-file F --metrics-dir DIR`."""

import sys

from evaluate_model.cli import main

if __name__ == "__main__":
    sys.exit(main())
