"""A conversation's tags: the rules a PATCH and the ?tag= filter share.

Tags are labels a person types ("Q4 launch", "email"): trimmed, compared and stored in
lower case so that "Email" and "email" are one tag, each 1..TAG_MAX_CHARS characters of
printable text, at most MAX_TAGS per conversation. The check constraints on the model hold
the count and the length for every writer; this module gives the messages a client reads.
"""

from conversations.models import MAX_TAGS, TAG_MAX_CHARS
from raptorflow.errors import InvalidInput


def tag_problem(raw) -> str | None:
    """Why `raw` cannot be a tag, or None."""
    if not isinstance(raw, str):
        return "Each tag must be a string."
    tag = raw.strip()
    if not tag:
        return "A tag may not be blank."
    if len(tag) > TAG_MAX_CHARS:
        return f"Each tag has at most {TAG_MAX_CHARS} characters."
    if not tag.isprintable():
        return "A tag may not contain control characters."
    return None


def normalize_tag(raw: str) -> str:
    return " ".join(raw.split()).lower()


def normalize_tags(raw, *, field: str = "tags") -> list[str]:
    """The tags to store, in the order given without repeats; InvalidInput naming `field`
    (and the position of each bad tag) otherwise."""
    if not isinstance(raw, list):
        raise InvalidInput({field: ["Must be a list of strings."]})
    problems = [f"Tag {index + 1}: {problem}" for index, tag in enumerate(raw) if (problem := tag_problem(tag))]
    if problems:
        raise InvalidInput({field: problems})
    tags = list(dict.fromkeys(normalize_tag(tag) for tag in raw))
    if len(tags) > MAX_TAGS:
        raise InvalidInput({field: [f"At most {MAX_TAGS} tags per conversation."]})
    return tags
