"""The telemetry service. Metrics, traces, alert rules and the dashboard (monitoring issue)."""
