"""Prompt assembly: instructions, numbered passages, history and the question, in budget.

Templates are versioned: the version is recorded with every answer (and is part of cache
keys later), so a change of wording is visible in logs and never mixes with old answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from grounded.generate.protocol import Message
from grounded.models import Hit

PROMPT_VERSION = "grounded-rag-v1"

SYSTEM_TEMPLATE = """You are the support assistant of this company. Answer the customer's \
question using ONLY the numbered passages below.
- Cite every fact with the number of its passage in square brackets, like [1] or [2][3].
- If the passages do not contain the answer, say that you could not find it in the \
documents, and do not guess.
- Be concise and quote numbers (days, prices, percentages) exactly as the passages give them.

Passages:
{passages}"""

NO_PASSAGES = "(no passages were found for this question)"
MIN_PASSAGE_TOKENS = 48

Counter = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: list[Message]
    passages: list[Hit]  # the passages actually included, numbered from 1 in this order
    prompt_tokens: int
    dropped_history: int
    version: str = PROMPT_VERSION


def format_passage(number: int, hit: Hit, text: str) -> str:
    where = f"{hit.source} — {hit.chunk.section_path}" if hit.chunk.section else hit.source
    return f"[{number}] ({where})\n{text}"


def _trim(text: str, budget: int, count: Counter) -> str:
    """Cut text to roughly `budget` tokens at a word boundary."""
    words = text.split()
    low, high = 0, len(words)
    while low < high:
        middle = (low + high + 1) // 2
        if count(" ".join(words[:middle])) <= budget:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low]) + " …"


def build_prompt(
    question: str,
    hits: Sequence[Hit],
    history: Sequence[Message],
    context_window: int,
    max_output_tokens: int,
    count: Counter,
) -> Prompt:
    """Fit passages (best first, the last one trimmed) and then history (newest first)."""
    fixed = count(SYSTEM_TEMPLATE) + count(question) + 16
    budget = context_window - max_output_tokens - fixed
    included: list[Hit] = []
    blocks: list[str] = []
    for hit in hits:
        block = format_passage(len(included) + 1, hit, hit.chunk.text)
        cost = count(block)
        if cost > budget:
            if budget < MIN_PASSAGE_TOKENS:
                break
            header = count(format_passage(len(included) + 1, hit, ""))
            block = format_passage(
                len(included) + 1, hit, _trim(hit.chunk.text, budget - header, count)
            )
            cost = count(block)
        included.append(hit)
        blocks.append(block)
        budget -= cost
    kept: list[Message] = []
    for message in reversed(history):
        cost = count(message.content) + 4
        if cost > budget:
            break
        kept.insert(0, message)
        budget -= cost
    system = SYSTEM_TEMPLATE.format(passages="\n\n".join(blocks) or NO_PASSAGES)
    messages = [Message("system", system), *kept, Message("user", question)]
    # What was spent is known from the pieces; re-counting the whole prompt would double the
    # tokenizer work on the path to the first token.
    used = context_window - max_output_tokens - budget
    return Prompt(messages, included, used, dropped_history=len(history) - len(kept))
