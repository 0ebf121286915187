"""Pipeline step: register the MLflow model only if the evaluation passes its thresholds (`python -m register`)."""
