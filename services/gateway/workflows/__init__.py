"""The gateway's workflow routes: definitions and their versions, runs, reviews and cancels."""
