#!/usr/bin/env python3
"""Checks batchgate's module layering: every `crate::<module>` reference in
src/ is an arrow from the file's top-level module to that module, and no
arrows may form a cycle (a module importing a module that imports it back,
directly or around a loop). Also: handlers never reach into the queue, and
the queue never touches protobuf (`pb::`).

    python3 .ci/layers.py          # prints the arrows; exits 1 on a violation
"""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
# The crate's roots, and the test-only fuzz harness that drives the whole
# crate from above (its targets' case budget is `crate::fuzz_cases` in lib).
ROOTS = {"lib", "main", "fuzz"}
# What `crate::<name>` may name: a module (a function or macro of lib.rs is
# no arrow).
MODULES = {p.stem for p in SRC.glob("*.rs")} | {p.name for p in SRC.iterdir() if p.is_dir()}


def top_module(path):
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def referenced(text):
    """Top-level modules named after `crate::`, including `crate::{a, b::c}`."""
    # `crate::name!` is a macro, not a module.
    names = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)\b(?!!)", text))
    for start in (m.end() for m in re.finditer(r"\bcrate::\{", text)):
        depth, item, i = 1, "", start
        while i < len(text) and depth:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if depth == 1 and c == ",":
                names.update(re.findall(r"^\s*([a-z_][a-z0-9_]*)", item))
                item = ""
            elif depth >= 1:
                item += c if depth == 1 else ""
            i += 1
        names.update(re.findall(r"^\s*([a-z_][a-z0-9_]*)", item))
    return names


def main():
    arrows = {}
    problems = []
    for path in sorted(SRC.rglob("*.rs")):
        module = top_module(path)
        if module in ROOTS:
            continue
        text = strip_comments(path.read_text())
        for target in referenced(text):
            if target != module and target in MODULES:
                arrows.setdefault(module, set()).add(target)
        rel = path.relative_to(SRC)
        if module == "handler" and re.search(r"\bcrate::queue\b|super::super::queue", text):
            problems.append(f"{rel}: a handler imports the queue")
        if module == "queue" and re.search(r"\bpb::", text):
            problems.append(f"{rel}: the queue uses protobuf (pb::)")

    # Cycles: a depth-first search over the arrows.
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(arrows.get(node, ())):
            if state.get(nxt) == "open":
                loop = stack[stack.index(nxt):] + [nxt]
                problems.append("cycle: " + " -> ".join(loop))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(arrows):
        if node not in state:
            visit(node)

    for module in sorted(arrows):
        print(f"{module:>10} -> {', '.join(sorted(arrows[module]))}")
    for p in problems:
        print(f"LAYERING: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
