"""README.md and docs/: every relative link and #anchor resolves, and no page is an orphan.

Anchors follow GitHub's rule for headings: the heading's text, lowercased, with every character that is
not a letter, digit, underscore, hyphen or space removed and each space turned into a hyphen; a repeated
slug gets -1, -2, ... in order.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# [text](target "title") and ![alt](target); the text may hold one level of [brackets] and span lines.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def markdown_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]


def _prose(text: str) -> str:
    """The text with fenced code blocks and inline code blanked out, line numbers kept."""
    lines, fence = [], None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    prose = "\n".join(lines)
    return INLINE_CODE.sub(lambda m: "\n" * m.group(0).count("\n") or " ", prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (inline markup reduced to the text it shows)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links show their text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs (numbered when repeated) and HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    lines, fence = path.read_text().splitlines(), None
    for line in lines:
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0]
            continue
        if fence is not None:
            if line.strip() and not line.strip().strip(fence):
                fence = None
            continue
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    found.update(HTML_ANCHOR.findall(path.read_text()))
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link in a page's prose."""
    prose = _prose(path.read_text())
    return [(prose.count("\n", 0, m.start()) + 1, m.group(1)) for m in LINK.finditer(prose)]


def problems(root: Path) -> list[str]:
    """Every link that does not resolve, and every docs page nothing links to."""
    pages = markdown_files(root)
    found, linked = [], set()
    for page in pages:
        where = page.relative_to(root)
        for line, target in links(page):
            if EXTERNAL.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / unquote(file_part)).resolve() if file_part else page.resolve()
            shown = f"{where}:{line}: link {target!r}"
            if not dest.is_relative_to(root.resolve()):
                found.append(f"{shown} leads out of the repository")
                continue
            if not dest.exists():
                found.append(f"{shown}: {dest.relative_to(root.resolve())} does not exist")
                continue
            if dest != page.resolve():
                linked.add(dest)
            if anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
                found.append(
                    f"{shown}: {dest.relative_to(root.resolve())} has no heading with the anchor "
                    f"#{anchor} (anchors are GitHub's heading slugs)"
                )
    for page in pages[1:]:
        if page.resolve() not in linked:
            found.append(f"{page.relative_to(root)} is linked from neither README.md nor another page")
    return found


def test_every_link_resolves_and_no_page_is_an_orphan():
    found = problems(ROOT)
    assert not found, "broken documentation links:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Syncs: Cloud SQL → warehouse", "syncs-cloud-sql--warehouse"),
        (
            "dbt: analysts' models and audits (astronomer-cosmos)",
            "dbt-analysts-models-and-audits-astronomer-cosmos",
        ),
        ("What `make run` does, step by step", "what-make-run-does-step-by-step"),
        ("Sentiment model: nightly retraining", "sentiment-model-nightly-retraining"),
        ("0001 — State committed with the data", "0001--state-committed-with-the-data"),
        ("The `nightshift_core.sync` [engine](x.md)", "the-nightshift_coresync-engine"),
    ],
)
def test_slug_follows_github(heading, expected):
    assert slug(heading) == expected


def test_problems_are_found(tmp_path):
    """The checker reports a missing file, a missing anchor, a path out of the tree and an orphan page,
    and ignores links in code and external ones."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "# Top\n\n[ok](docs/a.md#second-part) [gone](docs/missing.md) [bad anchor](docs/a.md#nope)\n"
        "[out](../elsewhere.md) [web](https://example.com/x.md) `[code](docs/none.md)`\n\n"
        "```\n[fenced](docs/none.md)\n```\n[here](#top) [Two\nlines](docs/a.md)\n"
    )
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Second part\n\n[back](../README.md#top)\n")
    (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n")
    found = problems(tmp_path)
    assert found == [
        "README.md:3: link 'docs/missing.md': docs/missing.md does not exist",
        "README.md:3: link 'docs/a.md#nope': docs/a.md has no heading with the anchor #nope "
        "(anchors are GitHub's heading slugs)",
        "README.md:4: link '../elsewhere.md' leads out of the repository",
        "docs/orphan.md is linked from neither README.md nor another page",
    ]
