"""Merge an adapter: `python -m merge_adapter --task T --base-model M --adapter DIR --output-dir DIR`."""

import sys

from merge_adapter.cli import main

if __name__ == "__main__":
    sys.exit(main())
