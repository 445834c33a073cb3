"""docs/reliability.md names, for each promise, the tests that prove it: each named test must
exist, so a renamed or deleted test breaks the page's check rather than leaving it pointing at
nothing, and every promise must name at least one."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"

#: A test as the page names it: `tests/<path>.py::test_<name>`.
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _test_functions(path: Path) -> set[str]:
    """Every test function defined in ``path``, at module level or in a class."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def _promises() -> dict[str, str]:
    """Each promise's section (a ``##`` heading and its text) by its heading."""
    sections = re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    return {section.partition("\n")[0].strip(): section for section in sections}


def test_every_test_the_page_names_exists():
    references = REFERENCE.findall(DOC.read_text(encoding="utf-8"))
    assert len(references) >= 30, f"only {len(references)} tests named: is the pattern right?"
    missing = []
    for path, name in sorted(set(references)):
        file = ROOT / path
        if not file.is_file():
            missing.append(f"{path}: no such file")
        elif name not in _test_functions(file):
            missing.append(f"{path}::{name}: no such test")
    assert not missing, "docs/reliability.md names tests that do not exist:\n" + "\n".join(missing)


def test_every_promise_names_a_test_that_proves_it():
    promises = _promises()
    assert len(promises) >= 9, list(promises)
    unproved = [title for title, text in promises.items() if not REFERENCE.search(text)]
    assert not unproved, f"promises in docs/reliability.md with no test named: {unproved}"
