#!/usr/bin/env python3
"""Finds import cycles between the files of Rust crates.

Each file is a module (`lib.rs`/`main.rs` the crate root, `a.rs` or `a/mod.rs` the module `a`,
`a/b.rs` the module `a::b`). A file depends on another when its code names a path into it:
`crate::a::b::Item`, `super::b::Item`, `self::b::Item` (in `use` lines or inline, grouped `use`
trees included). A path resolves to the longest module prefix that is a file; a module's own
children do not count as its dependencies unless named (a `mod b;` line is not a use).
Test code (`#[cfg(test)]` modules and items) is left out: tests may reach anywhere.

Usage: import_cycles.py CRATE_SRC_DIR...   exits 1 and prints every cycle when there is one.
       import_cycles.py --self-test        checks the checker on a made-up crate with cycles.
"""

import os
import re
import sys
import tempfile

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def module_of(src, path):
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    if rel == ["main"] and os.path.exists(os.path.join(src, "lib.rs")):
        # A binary beside a library is a crate of its own; it reaches the library by name.
        return ("<main>",)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def inline_modules(code):
    """(start, end, name) of each `mod name { ... }` written inside a file."""
    spans = []
    for m in re.finditer(rf"\bmod\s+({IDENT})\s*\{{", code):
        depth, j = 0, m.end() - 1
        while j < len(code):
            depth += code[j] == "{"
            depth -= code[j] == "}"
            if depth == 0:
                break
            j += 1
        spans.append((m.start(), j, m.group(1)))
    return spans


def module_at(module, spans, position):
    """The module a position of a file is in: the file's, or an inline one inside it."""
    inner = [s for s in spans if s[0] <= position <= s[1]]
    return module + tuple(name for _, _, name in sorted(inner))


def strip_comments_and_strings(text):
    """Blanks comments, string and char literals (keeping line breaks), so that paths inside
    them are not read as code."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not re.match(r"[A-Za-z0-9_]", text[i - 1])):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x[0-9a-fA-F]{2}'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x[0-9a-fA-F]{2}'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_test_code(text):
    """Removes every item marked `#[cfg(test)]` (with its braces' contents)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", text)
        if not m:
            return text
        j = m.end()
        depth, start = 0, None
        while j < len(text):
            if text[j] == "{":
                depth += 1
                start = start if start is not None else j
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            elif text[j] == ";" and depth == 0:
                j += 1
                break
            j += 1
        text = text[: m.start()] + "\n" * text.count("\n", m.start(), j) + text[j:]


def use_paths(tree, prefix=()):
    """Expands a `use` tree (`a::{b, c::{d, e}}`) into paths."""
    tree = tree.strip()
    depth = 0
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                head = [p for p in tree[:i].rstrip(":").split("::") if p]
                inner = tree[i + 1 : tree.rfind("}")]
                parts, level, last = [], 0, 0
                for k, c2 in enumerate(inner):
                    level += c2 == "{"
                    level -= c2 == "}"
                    if c2 == "," and level == 0:
                        parts.append(inner[last:k])
                        last = k + 1
                parts.append(inner[last:])
                paths = []
                for part in parts:
                    if part.strip():
                        paths += use_paths(part, prefix + tuple(head))
                return paths
            depth += 1
    name = re.sub(r"\s+as\s+\w+$", "", tree)
    return [prefix + tuple(p.strip() for p in name.split("::") if p.strip())]


def resolve(path, here, modules, reexports):
    """The module file a path names, from the module `here`; None outside the crate. A name
    that a module re-exports (`pub use child::Item;`) resolves to the file it comes from."""
    if not path:
        return None
    if path[0] == "crate":
        base, rest = (), path[1:]
    elif path[0] == "super":
        base, rest = here, path
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif path[0] == "self":
        base, rest = here, path[1:]
    elif here + (path[0],) in modules:
        base, rest = here, path
    else:
        return None
    best, k_best = None, 0
    for k in range(len(rest) + 1):
        candidate = base + tuple(rest[:k])
        if candidate in modules:
            best, k_best = candidate, k
    if best is not None and k_best < len(rest) and rest[k_best] in reexports.get(best, {}):
        target = reexports[best][rest[k_best]]
        if target != path:
            return resolve(target, best, modules, {}) or best
    return best


def read_code(path):
    with open(path, encoding="utf-8") as f:
        return drop_test_code(strip_comments_and_strings(f.read()))


USE = r"\b(pub(?:\([a-z]+\))?\s+)?use\s+([^;]+);"


def dependencies(src):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                files[module_of(src, path)] = path
    codes = {m: read_code(p) for m, p in files.items()}
    reexports = {}
    for module, code in codes.items():
        for m in re.finditer(USE, code):
            if m.group(1):
                for p in use_paths(m.group(2)):
                    reexports.setdefault(module, {})[p[-1]] = p
    edges = {m: set() for m in files}
    for module, code in codes.items():
        spans = inline_modules(code)
        paths = []
        for m in re.finditer(USE, code):
            for p in use_paths(m.group(2)):
                # A module re-exporting its own children is their facade, not their user.
                if m.group(1) and (p[0] == "self" or module + (p[0],) in files):
                    continue
                paths.append((p, module_at(module, spans, m.start())))
        code_without_uses = re.sub(USE, lambda m: " " * len(m.group(0)), code)
        for m in re.finditer(rf"(?<![A-Za-z0-9_:])(?:{IDENT})(?:::{IDENT})+", code_without_uses):
            paths.append((tuple(m.group(0).split("::")), module_at(module, spans, m.start())))
        for p, here in paths:
            target = resolve(p, here, files, reexports)
            if target is not None and target != module:
                edges[module].add(target)
    return files, edges


def cycles(edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def check(srcs):
    found = []
    for src in srcs:
        files, edges = dependencies(src)
        for component in cycles(edges):
            lines = []
            for a in component:
                for b in sorted(edges[a]):
                    if b in component:
                        lines.append(f"  {files[a]} -> {files[b]}")
            found.append((src, component, lines))
    return found


def self_test():
    crate = {
        "lib.rs": "mod a;\nmod b;\nmod c;\nmod d;\nmod e;\n",
        "a.rs": "use crate::{b::Thing, c};\n",
        "b.rs": "pub struct Thing;\nfn f() { let _ = super::a::helper(); }\n",
        "c.rs": "// use crate::d::X; only a comment\nconst S: &str = \"crate::d::X\";\n"
        "#[cfg(test)]\nmod tests { use crate::d::X; }\n",
        "d.rs": "use crate::c;\n",
        "e/mod.rs": "mod f;\nuse self::f::G;\n",
        "e/f.rs": "pub struct G;\nmod inner { use super::G; }\n",
        "main.rs": "use crate::Thing;\n",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, body in crate.items():
            os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
            with open(os.path.join(tmp, name), "w") as f:
                f.write(body)
        found = check([tmp])
        names = [[os.path.basename(files_path.split(" -> ")[0]) for files_path in lines] for _, _, lines in found]
        components = [c for _, c, _ in found]
        assert components == [[("a",), ("b",)]], f"expected only a <-> b, got {components}"
        assert names == [["a.rs", "b.rs"]], names
    print("import_cycles self-test: a <-> b found; comments, strings, tests and children ignored")


def main(argv):
    if argv == ["--self-test"]:
        self_test()
        return 0
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    found = check(argv)
    for src, component, lines in found:
        print(f"import cycle in {src} between {len(component)} files:")
        print("\n".join(lines))
    if found:
        return 1
    print(f"no import cycle between the files of {', '.join(argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
