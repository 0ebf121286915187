"""Pipeline step: evaluate a fine-tuned model on held-out data and write metrics.json (`python -m evaluate_model`).

Named evaluate_model, not evaluate: jobs/src is the working directory of every step, and a package called
`evaluate` there would shadow Hugging Face's `evaluate` library for all of them.
"""
