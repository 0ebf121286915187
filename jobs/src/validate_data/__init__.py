"""Pipeline step: check the training data before any GPU time is spent (`python -m validate_data`)."""
