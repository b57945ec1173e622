"""The API's one JSON parser (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES): DRF's, with the two
checks that keep hostile bodies from turning into 500s further in.

- Nesting is bounded at settings.JSON_MAX_DEPTH levels of arrays and objects. Python's json
  module recurses once per level, so a body of 100000 `[` raised RecursionError past DRF's
  parser; the depth is measured first, without recursion, on the text with its strings
  blanked out (a `[` inside a string is not nesting). Deeper is a 400 `malformed_request`.
- Every string, key or value, must be encodable as UTF-8. JSON may carry a lone surrogate
  (`"\\ud800"`) that json.loads accepts, but psycopg, PyJWT and the JSON renderer cannot
  encode it. Such a body is a 400 `validation_error` naming the top-level field it is in.
  The walk runs only when the text has a `\\uD800`-`\\uDFFF` escape, so normal bodies pay
  one regex search.
"""

import codecs
import json
import re

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.utils.json import strict_constant

# A JSON string, escapes included; linear: its two alternatives never start alike.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")

SURROGATE_MESSAGE = "Must not contain unpaired surrogate characters (\\ud800-\\udfff), which are not valid Unicode."


def nesting_exceeds(text: str, max_depth: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than max_depth, counted
    iteratively (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= max_depth:
        return False
    depth = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub('""', text)):
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    """A key as it can be written in a UTF-8 response (its lone surrogates escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def unencodable_field(data) -> str | None:
    """The top-level field of the first string (key or value) in `data` that UTF-8 cannot
    encode: "" for the body itself when it is not an object, None when there is none.
    Iterative; the depth is bounded before this runs anyway."""
    if isinstance(data, dict):
        roots = [(_printable(key), key, value) for key, value in data.items()]
    else:
        roots = [("", None, data)]
    for field, key, value in roots:
        if key is not None and not _encodable(key):
            return field
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if not _encodable(item):
                    return field
            elif isinstance(item, dict):
                for inner_key, inner_value in item.items():
                    if not _encodable(inner_key):
                        return field
                    stack.append(inner_value)
            elif isinstance(item, list):
                stack.extend(item)
    return None


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"JSON parse error - the body is not valid {encoding}: {exc}") from None
        max_depth = settings.JSON_MAX_DEPTH
        if nesting_exceeds(text, max_depth):
            raise ParseError(f"JSON parse error - nested deeper than {max_depth} levels of arrays and objects.")
        try:
            data = json.loads(text, parse_constant=strict_constant if self.strict else None)
        except (ValueError, RecursionError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        # Text decoded as UTF-8 holds no surrogate itself; another charset (raw_unicode_escape)
        # might, so then the text is checked as a whole too.
        if _SURROGATE_ESCAPE.search(text) or (codecs.lookup(encoding).name != "utf-8" and not _encodable(text)):
            field = unencodable_field(data)
            if field == "":
                raise ValidationError([SURROGATE_MESSAGE])
            if field is not None:
                raise ValidationError({field: [SURROGATE_MESSAGE]})
        return data
