"""The operator dashboard: a static page served by the gateway that reads the telemetry API."""
