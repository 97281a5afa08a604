"""Where chunks live: the `Store` protocol and its backends."""
