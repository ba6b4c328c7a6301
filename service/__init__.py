"""Tweet Triage prediction service (FastAPI); built in a later issue. Imports `model`, never `training`."""
