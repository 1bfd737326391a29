#!/usr/bin/env python3
"""Checks batchgate's layering, crate by crate (crates/*/src): every
`crate::<module>` reference is an arrow from the file's top-level module to
that module, and no
arrows may form a cycle (a module importing a module that imports it back,
directly or around a loop). The same holds one level down and below:
within a module, the arrows between its inner modules (`super::x`,
`crate::a::x`, `self::x`, use trees included) may not form a cycle either
(a child using its parent, or a parent its child, is no arrow). Also:
handlers never reach into the queue, the queue never touches protobuf
(`pb::`), and no file under a crate's src/ is longer than MAX_LINES.
Between crates (their Cargo.toml): the wire types (`batchgate-proto`)
depend on no other crate of the workspace and the server (`batchgate`) on
none but them, and only tests, benches and the test-support
crate itself depend on `batchgate-test-support`.

    python3 .ci/layers.py          # prints the arrows; exits 1 on a violation
"""

import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
CRATES = REPO / "crates"
# The crate being checked: its src/, and what `crate::<name>` may name (a
# module; a function or macro of lib.rs is no arrow). Set by check().
SRC = CRATES / "server" / "src"
MODULES = set()
# A crate's roots, and the server's test-only fuzz harness that drives the
# whole crate from above (its case budget is `crate::fuzz_cases` in lib).
ROOTS = {"lib", "main", "fuzz"}
# Longest file under src/.
MAX_LINES = 500


def module_path(path):
    """The module a file defines, as a tuple: src/a/b/mod.rs is ("a", "b")."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    if parts in (["lib"], ["main"]):
        return ()
    return tuple(parts)


IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def use_paths(text):
    """Every path that starts at `crate`, `super` or `self`, use trees
    expanded: `super::{a, b::{c, d}}` gives super::a, super::b::c, super::b::d."""
    out = []

    def tree(i, prefix):
        # Parses a use tree at text[i:] after `prefix::`; returns the end.
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] == "{":
            i += 1
            while i < len(text) and text[i] != "}":
                i = tree(i, prefix)
                while i < len(text) and (text[i].isspace() or text[i] == ","):
                    i += 1
            return i + 1
        m = re.compile(IDENT).match(text, i)
        if not m:
            out.append(prefix)
            return i + 1
        path = prefix + [m.group(0)]
        j = m.end()
        if text.startswith("::", j):
            return tree(j + 2, path)
        out.append(path)
        return j

    for m in re.finditer(r"\b(crate|self|super)((?:::super)*)::", text):
        head = [m.group(1)] + ["super"] * m.group(2).count("super")
        tree(m.end(), head)
    return out


def resolve(source, path, real):
    """The module a path from module `source` names (the longest real
    module prefix of it), or None."""
    if path[0] == "crate":
        absolute = list(path[1:])
    else:
        base = list(source)
        rest = list(path)
        if rest[0] == "self":
            rest = rest[1:]
        while rest and rest[0] == "super":
            if not base:
                return None
            base.pop()
            rest = rest[1:]
        absolute = base + rest
    while absolute and tuple(absolute) not in real:
        absolute.pop()
    return tuple(absolute)


def inner_arrows(files):
    """Arrows between sibling modules below the top level: (parent, a, b)
    when a file in parent::a names something in parent::b."""
    real = {module_path(p) for p in files}
    arrows = {}
    for path in files:
        source = module_path(path)
        text = strip_comments(path.read_text())
        for p in use_paths(text):
            target = resolve(source, p, real)
            if target is None:
                continue
            k = 0
            while k < min(len(source), len(target)) and source[k] == target[k]:
                k += 1
            # An ancestor or a descendant is no arrow; the top level is
            # checked on its own.
            if k == 0 or k == len(source) or k == len(target):
                continue
            a, b = source[: k + 1], target[: k + 1]
            arrows.setdefault(a, set()).add(b)
    return arrows


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


def crate_boundaries():
    """The Cargo.toml rules between the workspace's crates."""
    problems = []
    for manifest in sorted(CRATES.glob("*/Cargo.toml")):
        text = manifest.read_text()
        name = re.search(r'^name = "([^"]+)"', text, re.M).group(1)
        sections = re.split(r"^\[", text, flags=re.M)
        deps = "".join(sec for sec in sections if sec.startswith("dependencies]"))
        used = set(re.findall(r"^(batchgate[a-z-]*)[ .=]", deps, re.M))
        if name == "batchgate-proto" and used:
            problems.append(f"{manifest.relative_to(REPO)}: the wire types depend on {sorted(used)}")
        if name == "batchgate" and used - {"batchgate-proto"}:
            problems.append(f"{manifest.relative_to(REPO)}: the server depends on {sorted(used)}")
        if name != "batchgate-test-support" and "batchgate-test-support" in used:
            problems.append(f"{manifest.relative_to(REPO)}: test-support outside [dev-dependencies]")
        print(f"{name:>24} -> {', '.join(sorted(used)) or '(no workspace crate)'}")
    return problems


def main():
    global SRC, MODULES
    problems = crate_boundaries()
    for src in sorted(CRATES.glob("*/src")):
        SRC = src
        MODULES = {p.stem for p in SRC.glob("*.rs")} | {p.name for p in SRC.iterdir() if p.is_dir()}
        print(f"== {src.relative_to(REPO)}")
        problems += check(sorted(SRC.rglob("*.rs")))
    for p in problems:
        print(f"LAYERING: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


def check(files):
    """The module rules within one crate; returns the problems."""
    arrows = {}
    problems = []
    for path in files:
        lines = path.read_text().count("\n")
        if lines > MAX_LINES:
            problems.append(f"{path.relative_to(SRC)}: {lines} lines (at most {MAX_LINES})")
    for path in files:
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

    # Cycles: a depth-first search over the arrows, top level and inner.
    state, stack = {}, []
    inner = inner_arrows(files)

    def name(node):
        return node if isinstance(node, str) else "::".join(node)

    def visit(node, arrows):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(arrows.get(node, ())):
            if state.get(nxt) == "open":
                loop = stack[stack.index(nxt):] + [nxt]
                problems.append("cycle: " + " -> ".join(map(name, loop)))
            elif nxt not in state:
                visit(nxt, arrows)
        stack.pop()
        state[node] = "done"

    for graph in (arrows, inner):
        for node in sorted(graph):
            if node not in state:
                visit(node, graph)

    for module in sorted(arrows):
        print(f"{module:>10} -> {', '.join(sorted(arrows[module]))}")
    print(f"{sum(len(v) for v in inner.values())} arrows between inner modules")
    return problems


if __name__ == "__main__":
    main()
