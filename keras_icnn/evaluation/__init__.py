"""Running models for the metrics: the streaming evaluation of a split (exactly two passes
over the data), the model-level metric wrappers, and one model's full evaluation with its
report.html atlas (``keras-icnn-evaluate``'s work)."""
