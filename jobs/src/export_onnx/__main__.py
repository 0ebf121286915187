"""Export to ONNX Runtime: `python -m export_onnx --base-model DIR [--adapter DIR] --output-dir DIR`."""

import sys

from export_onnx.cli import main

if __name__ == "__main__":
    sys.exit(main())
