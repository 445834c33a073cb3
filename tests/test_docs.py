"""What should stay true of the documentation: a short README, links that lead somewhere, and
docs that stand on their own (no file outside the repository is cited)."""

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]

#: The README says what the service is, how to run it and where to read more; the rest is in docs/.
README_MAX_BYTES = 6500

#: Names of files that live outside this repository, which a doc must not send its reader to.
OUTSIDE = re.compile(r"\.\./shared|DESIGN\.md|STACK-NOTES\.md|seed-phase", re.IGNORECASE)

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r'<a id="([^"]+)"></a>')


def _without_code(text: str) -> str:
    return FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, inline markup and punctuation removed, spaces
    turned into hyphens."""
    text = re.sub(r"`|\*\*|\*|_(?=\W)|(?<=\W)_", "", heading).strip().lower()
    kept = []
    for char in text:
        if char in " -_" or unicodedata.category(char)[0] in "LN":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in HEADING.findall(_without_code(path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors | set(HTML_ANCHOR.findall(path.read_text(encoding="utf-8")))


def _links(path: Path) -> list[str]:
    return LINK.findall(_without_code(path.read_text(encoding="utf-8")))


def test_the_readme_is_short():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; keep it under {README_MAX_BYTES}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_to_files_and_headings_that_exist(doc: Path):
    broken = []
    for target in _links(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif not linked.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no such heading in {linked.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_cite_no_file_outside_the_repository(doc: Path):
    found = sorted({m.group(0) for m in OUTSIDE.finditer(doc.read_text(encoding="utf-8"))})
    assert not found, f"{doc.relative_to(ROOT)} refers to files outside the repository: {found}"


def test_slugs_follow_github():
    assert (
        _slug("GET /api/analytics/insights/{fingerprint}") == "get-apianalyticsinsightsfingerprint"
    )
    assert _slug("Browsers on another origin (CORS)") == "browsers-on-another-origin-cors"
    assert _slug("Engagement (`engagement_scoring`)") == "engagement-engagement_scoring"
    assert (
        _slug("What to watch: profiles, scorer, janitor") == "what-to-watch-profiles-scorer-janitor"
    )
