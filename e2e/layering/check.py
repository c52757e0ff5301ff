#!/usr/bin/env python3
"""Layering checks of the Rust crates, run by e2e/test.sh:

1. No import cycle between sibling modules. In every module of every crate, its child
   modules must import each other one way only: a child module `a` (any file under it)
   that names `b` (by `crate::...`, `super::...` or `self::...` paths, `use` groups
   included) and `b` that names `a` form a cycle. A child naming its parent's own items is
   not a cycle (the parent composes its children).
2. No source file over 600 lines, outside tests, benches, fuzz targets and generated code.

Prints every cycle (with one reference of each edge) and every long file, and exits 1 if
there is any. Usage: check.py [ROOT]
"""

import os
import re
import sys

MAX_LINES = 600
SKIP_DIRS = {"target", "tests", "benches", "fuzz", "node_modules", ".git"}


def crate_roots(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            yield os.path.join(dirpath, "src")


def module_path(src, path):
    """Module path of a file: src/a/b.rs and src/a/b/mod.rs are both ['a', 'b']."""
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def test_free(text):
    """The file without its `#[cfg(test)] mod ... { ... }` blocks (unit tests may use anything)."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand(text):
    """Every path a file names: `crate::a::b`, `super::x`, and `use p::{a::b, c}` groups."""
    paths = []
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)*)::\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}", text):
        base = m.group(1)
        for item in re.split(r",", re.sub(r"\{[^{}]*\}", "", m.group(2))):
            item = item.strip().split(" as ")[0].strip()
            if item and item != "self":
                paths.append(f"{base}::{item}")
            elif item == "self":
                paths.append(base)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        paths.append(m.group(1))
    return paths


def resolve(path, here, modules):
    """The longest existing module path a `crate::`/`super::`/`self::` path names."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = [], parts[1:]
    else:
        base = list(here)
        rest = parts
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    target = list(base)
    for part in rest:
        if tuple(target + [part]) in modules:
            target.append(part)
        else:
            break
    return tuple(target)


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def check_crate(src):
    problems = []
    files = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        files += [os.path.join(dirpath, f) for f in filenames if f.endswith(".rs")]
    modules = {tuple(module_path(src, f)): f for f in files}
    # Modules declared `#[cfg(test)] mod name;` (unit tests and their fixtures in files of
    # their own) are tests: they may use anything.
    test_only = set()
    for f in files:
        here = tuple(module_path(src, f))
        text = strip_comments(open(f, encoding="utf-8").read())
        for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text):
            test_only.add(here + (m.group(1),))
    is_test = lambda path: any(path[: len(t)] == t for t in test_only)
    # edges[parent][child_a] = {child_b: example reference}
    edges = {}
    for f in files:
        here = tuple(module_path(src, f))
        if is_test(here):
            continue
        text = test_free(strip_comments(open(f, encoding="utf-8").read()))
        for path in expand(text):
            target = resolve(path, here, modules)
            # The deepest common ancestor's children on each side.
            common = 0
            while common < min(len(here), len(target)) and here[common] == target[common]:
                common += 1
            if common >= len(here) or common >= len(target):
                continue  # an ancestor or a descendant of the file: not between siblings
            parent = here[:common]
            a, b = here[common], target[common]
            edges.setdefault(parent, {}).setdefault(a, {}).setdefault(b, f"{os.path.relpath(f)}: {path}")
    for parent, graph in sorted(edges.items()):
        nodes = set(graph) | {b for targets in graph.values() for b in targets}
        full = {n: set(graph.get(n, {})) for n in nodes}
        for comp in sccs(full):
            if len(comp) > 1:
                where = "::".join(parent) or "crate root"
                lines = [
                    f"  {a} -> {b} ({graph[a][b]})"
                    for a in sorted(comp)
                    for b in sorted(graph.get(a, {}))
                    if b in comp
                ]
                problems.append(
                    f"{os.path.relpath(src)}: modules of {where} import each other: {', '.join(sorted(comp))}\n"
                    + "\n".join(lines)
                )
    for f in sorted(files):
        n = sum(1 for _ in open(f, encoding="utf-8"))
        if n > MAX_LINES:
            problems.append(f"{os.path.relpath(f)}: {n} lines (at most {MAX_LINES}; split it by concern)")
    return problems


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.getcwd()
    os.chdir(root)
    problems = []
    crates = sorted(crate_roots("."))
    for src in crates:
        problems += check_crate(src)
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print(f"layering: {len(crates)} crates, no import cycle between sibling modules, no source file over {MAX_LINES} lines")


if __name__ == "__main__":
    main()
