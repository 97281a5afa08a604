"""Documents in: load, clean, deduplicate, chunk, embed, hand to the store."""
