"""Approximate token counts for prompt budgets, offline.

tiktoken downloads its tables at run time (SPEC §7), so budgets count characters instead:
English averages about four characters per token; counting three gives a safety margin
for code, numbers and other languages. Billed usage is always the provider's own figure.
"""

import math

CHARS_PER_TOKEN = 3
# Role markers and separators the chat formats add around each message.
TOKENS_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_message_tokens(text: str) -> int:
    return estimate_tokens(text) + TOKENS_PER_MESSAGE
