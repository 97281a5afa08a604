"""Turn a follow-up ("and for phones?") into a question that stands on its own.

With a model configured, the model rewrites it. Without one, a deterministic rule: a
short follow-up takes the previous question and swaps in its own subject for the word
of the previous question most like it (by embedding), e.g. "Can I return a laptop after
45 days?" + "and for phones?" → "Can I return a phones after 45 days?". Good enough for
retrieval, which is all it is used for.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from grounded.generate.protocol import Message
from grounded.ingest.embedders.protocol import Embedder

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_LEADS = re.compile(
    r"^\s*(and|also|but|or|so|then|what about|how about|what if|and what about|same for)\b[\s,]*",
    re.IGNORECASE,
)
_FILLER = {
    "and",
    "also",
    "but",
    "or",
    "so",
    "then",
    "what",
    "about",
    "how",
    "if",
    "for",
    "the",
    "a",
    "an",
    "same",
    "with",
    "of",
    "to",
    "is",
    "it",
    "that",
    "this",
    "those",
    "these",
    "they",
    "them",
    "one",
    "ones",
    "do",
    "does",
    "can",
    "i",
    "my",
    "you",
    "your",
    "please",
}
FOLLOW_UP_MAX_WORDS = 6

REWRITE_INSTRUCTION = (
    "Rewrite the customer's last message as one stand-alone question that can be understood "
    "without the conversation. Reply with the question only."
)


def previous_question(history: Sequence[Message]) -> str | None:
    for message in reversed(history):
        if message.role == "user" and message.content.strip():
            return message.content.strip()
    return None


def looks_like_follow_up(question: str) -> bool:
    words = _WORD.findall(question)
    return bool(_LEADS.match(question)) or (
        len(words) <= FOLLOW_UP_MAX_WORDS
        and any(
            w.lower() in {"it", "that", "this", "those", "these", "they", "them", "one", "ones"}
            for w in words
        )
    )


def heuristic_rewrite(question: str, history: Sequence[Message], embedder: Embedder) -> str:
    previous = previous_question(history)
    if previous is None or not looks_like_follow_up(question):
        return question
    subject = [w for w in _WORD.findall(_LEADS.sub("", question)) if w.lower() not in _FILLER]
    if not subject:
        return previous
    candidates = [m for m in _WORD.finditer(previous) if m.group().lower() not in _FILLER]
    if not candidates:
        return f"{previous} {' '.join(subject)}"
    vectors = embedder.embed([" ".join(subject), *(m.group() for m in candidates)])
    best = candidates[int(np.argmax(vectors[1:] @ vectors[0]))]
    return previous[: best.start()] + " ".join(subject) + previous[best.end() :]


def rewrite_messages(question: str, history: Sequence[Message]) -> list[Message]:
    """The prompt that asks a model to do the rewrite."""
    transcript = "\n".join(f"{m.role}: {m.content}" for m in history[-6:])
    return [
        Message("system", REWRITE_INSTRUCTION),
        Message("user", f"Conversation:\n{transcript}\n\nLast message: {question}"),
    ]
