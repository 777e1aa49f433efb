"""Governance routes of the gateway: API keys and the audit log."""
