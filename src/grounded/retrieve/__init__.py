"""Questions in, ranked chunks out: dense + BM25, fused, collapsed."""
