"""Run the training entry point: `python -m finetune --task ... --model ... --train-file ...`."""

import sys

from finetune.cli import main

if __name__ == "__main__":
    sys.exit(main())
