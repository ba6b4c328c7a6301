"""The triage inbox: a persisted, prioritised queue of posts with SLA clocks and human feedback for retraining."""
