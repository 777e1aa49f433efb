"""The gateway: Hearth's REST API (Litestar) and, in later issues, its inference plane."""
