"""What happened: request logs (metrics and tracing come later)."""
