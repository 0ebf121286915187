"""Run the data checks: `python -m validate_data --task T --train-file F ... --report-dir DIR`."""

import sys

from validate_data.cli import main

if __name__ == "__main__":
    sys.exit(main())
