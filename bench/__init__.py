"""The harness: datasets, LR synthesis, metrics, timing, the runner, results and reports."""
