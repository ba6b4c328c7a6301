"""Tweet Triage training package: datasets, trainers, evaluation and the `triage-train` CLI."""
