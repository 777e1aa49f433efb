"""The governance service. Keys, policies, retention, archiving and audit (governance issue)."""
