"""Pipeline step: merge a LoRA/DoRA adapter into its base model and save a full model (`python -m merge_adapter`)."""
