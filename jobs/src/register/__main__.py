"""Decide and register: `python -m register --metrics DIR --model-name N --mlflow-model DIR --decision-dir DIR`."""

import sys

from register.cli import main

if __name__ == "__main__":
    sys.exit(main())
