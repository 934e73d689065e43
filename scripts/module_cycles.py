#!/usr/bin/env python3
"""Import circles among a crate's modules, from the source text.

Every non-test line naming `crate::a::b…` or `super::…` is an edge from the module the
file belongs to, to the module it names, both cut to DEPTH path segments (so `--depth 1`
compares the crate's top-level modules, and `--prefix compose --depth 2` the files of
`compose/`). Strongly connected groups of more than one module are circles; the script
prints each with one edge that closes it, and exits 1 if there is any.

    python3 scripts/module_cycles.py crates/eino-server/src --depth 1
    python3 scripts/module_cycles.py crates/eino/src --prefix compose --depth 2

Test code is left out: a `#[cfg(test)]` item to the end of the file, and `tests/`.
"""

import argparse
import re
import sys
from pathlib import Path

PATH_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
GROUP_RE = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{")


def module_of(root: Path, file: Path) -> list[str]:
    rel = file.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def code_of(text: str) -> str:
    """The file without its test module and comments."""
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    text = re.sub(r"//[^\n]*", "", text)
    return text


def targets(code: str, here: list[str], is_mod_file: bool) -> set[tuple[str, ...]]:
    """Module paths named in `code` by a module at `here`."""
    out = set()
    # `super` of a `mod.rs`/`x.rs` module is its parent module.
    parent = here[:-1]
    for m in PATH_RE.finditer(code):
        base = [] if m.group(1) == "crate" else list(parent)
        segs = [s for s in m.group(2).split("::") if s]
        # `super::super::x`
        while segs and segs[0] == "super":
            base = base[:-1]
            segs = segs[1:]
        out.add(tuple(base + segs))
    for m in GROUP_RE.finditer(code):
        base = [] if m.group(1) == "crate" else list(parent)
        segs = [s for s in m.group(2).split("::") if s]
        out.add(tuple(base + segs))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, help="the crate's src directory")
    ap.add_argument("--prefix", default="", help="only modules under this one (a::b)")
    ap.add_argument("--depth", type=int, default=1, help="path segments that name a module")
    args = ap.parse_args()
    prefix = [p for p in args.prefix.split("::") if p]
    modules = {}
    for f in sorted(args.root.rglob("*.rs")):
        if "tests" in f.relative_to(args.root).parts:
            continue
        modules[f] = module_of(args.root, f)
    known = {tuple(m[: args.depth]) for m in modules.values() if m[: len(prefix)] == prefix and len(m) >= args.depth}
    edges: dict[tuple, dict[tuple, str]] = {k: {} for k in known}
    for f, mod in modules.items():
        if mod[: len(prefix)] != prefix or len(mod) < args.depth:
            continue
        src = tuple(mod[: args.depth])
        code = code_of(f.read_text())
        for t in targets(code, mod, f.name == "mod.rs"):
            dst = t[: args.depth]
            if dst in known and dst != src:
                edges[src].setdefault(dst, str(f))
    # Tarjan's strongly connected components.
    index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(known):
        if v not in index:
            visit(v)
    circles = [sorted(c) for c in sccs if len(c) > 1]
    name = lambda m: "::".join(m) or "crate"
    for c in circles:
        print(f"circle of {len(c)}: " + ", ".join(name(m) for m in c))
        members = set(c)
        for a in c:
            for b, where in edges[a].items():
                if b in members:
                    print(f"  {name(a)} -> {name(b)}  ({where})")
    print(f"{len(known)} modules, {sum(len(e) for e in edges.values())} edges, {len(circles)} circles")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
