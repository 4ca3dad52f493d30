#!/usr/bin/env python3
"""Lines of Python code under the given folders: not blank, not comments, not docstrings.

    python3 scripts/count_code_lines.py src tests benchmarks

A line counts when any token other than a comment or a line break starts or continues on it, and it is
not part of a module, class or function docstring. The "One house" issue's line budget is checked with it.
"""
import ast
import io
import pathlib
import sys
import tokenize

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}


def code_lines(path: pathlib.Path) -> int:
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _SKIP:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def main(folders: list[str]) -> int:
    total = 0
    for folder in folders or ["src", "tests", "benchmarks"]:
        count = sum(code_lines(p) for p in sorted(pathlib.Path(folder).rglob("*.py")))
        print(f"{folder}\t{count}")
        total += count
    print(f"total\t{total}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
