"""`python -m azfinetune` runs the CLI."""

from azfinetune.cli import main

main()
