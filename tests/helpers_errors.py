"""The project's rule for rejections, as one assertion: a person can read them in a log line."""
from __future__ import annotations

import re


def assert_one_sentence(exc_or_text, *paths, ignore_paths: bool = False) -> None:
    """Non-empty, one line, no traceback, fewer than 200 characters.

    paths / ignore_paths: file paths the message names (the test's tmp folders) do not count towards the
    length; with ``ignore_paths`` every absolute path is left out of the count.
    """
    text = str(exc_or_text)
    assert text.strip(), f"{type(exc_or_text).__name__} with an empty message"
    assert "\n" not in text, f"multi-line message: {text!r}"
    assert "Traceback" not in text, text
    short = text
    for p in sorted((str(p) for p in paths), key=len, reverse=True):
        short = short.replace(p, "<path>")
    if paths or ignore_paths:
        short = re.sub(r"/[^\s:,']+", "<path>", short)
    assert len(short) < 200, f"message too long ({len(short)} chars): {short!r}"
