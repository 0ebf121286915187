"""azfinetune's training entry point: `python -m finetune ...` on Azure ML compute and locally."""

__version__ = "0.1.0"
