"""The AI gateway in front of generation: keys and tenants, limits, admission, workers,
routing and shadow traffic."""
