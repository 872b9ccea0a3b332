#!/usr/bin/env python3
"""Fails when the top-level modules of the fwdb library depend on each other in a cycle.

A module's dependencies are the `crate::<module>` paths in its non-test code
(unit-test modules and `tests.rs` files are skipped: a test may look across).
Run by scripts/check.sh; prints the dependency graph with --graph.
"""
import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "crates" / "fwdb" / "src"


def non_test_code(text: str) -> str:
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    code = text[: cut.start()] if cut else text
    # Doc links and comments are not dependencies.
    return re.sub(r"//[^\n]*", "", code)


def graph() -> dict:
    modules = {p.stem for p in SRC.glob("*.rs") if p.stem not in ("lib",)} | {p.name for p in SRC.iterdir() if p.is_dir()}
    deps = {m: set() for m in modules}
    for path in SRC.rglob("*.rs"):
        rel = path.relative_to(SRC)
        if rel.name == "tests.rs" or rel.stem == "lib":
            continue
        owner = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for dep in re.findall(r"crate::(\w+)", non_test_code(path.read_text())):
            if dep in modules and dep != owner:
                deps[owner].add(dep)
    return deps


def cycles(deps: dict) -> list:
    found, state, stack = [], {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(deps[m]):
            if state.get(d) == "open":
                found.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(deps):
        if m not in state:
            visit(m)
    return found


def main() -> int:
    deps = graph()
    if "--graph" in sys.argv:
        for m in sorted(deps):
            print(f"{m} -> {', '.join(sorted(deps[m])) or '-'}")
    found = cycles(deps)
    for c in found:
        print("module cycle: " + " -> ".join(c), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
