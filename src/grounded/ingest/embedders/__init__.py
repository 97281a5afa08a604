"""Embedding backends. Each backend is one module; `factory.build_embedder` picks one."""
