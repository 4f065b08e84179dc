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


def _in_code(lines: list[str]) -> list[bool]:
    """For each line, whether it belongs to a fenced code block (the fences included)."""
    mask, fence = [], ""
    for line in lines:
        match = FENCE.match(line)
        if not fence and match:
            fence = match.group(1)
            mask.append(True)
        elif fence:
            closing = line.strip()
            if closing.startswith(fence) and not closing.strip(fence[0]):
                fence = ""
            mask.append(True)
        else:
            mask.append(False)
    return mask


def _prose(text: str) -> str:
    """The text with fenced code blocks and inline code blanked out, line numbers kept."""
    lines = text.splitlines()
    prose = "\n".join("" if code else line for line, code in zip(lines, _in_code(lines), strict=True))
    return INLINE_CODE.sub(lambda m: "\n" * m.group(0).count("\n") or " ", prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (inline markup reduced to the text it shows)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links show their text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, text) of every heading outside code blocks."""
    lines = path.read_text().splitlines()
    return [
        (len(heading.group(1)), heading.group(2))
        for line, code in zip(lines, _in_code(lines), strict=True)
        if not code and (heading := HEADING.match(line))
    ]


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs (numbered when repeated) and HTML anchors."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, text in headings(path):
        base = slug(text)
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


FRONT_DOOR_SECTIONS = {"The two commands", "What `make run` does, step by step", "Layout", "Where to go next"}


def test_readme_stays_a_front_door():
    """README holds what a newcomer needs first; every other topic has its page under docs/."""
    extra = [
        text for level, text in headings(ROOT / "README.md") if level > 1 and text not in FRONT_DOOR_SECTIONS
    ]
    assert not extra, (
        f"README.md is the front door, but has the sections {extra}: put each on its page under docs/ "
        "(or a new page linked from README's 'Where to go next')"
    )


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
        "```\n[fenced](docs/none.md)\n# Fenced\n```\n[here](#top) [Two\nlines](docs/a.md) [fenced](#fenced)\n"
    )
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Second part\n\n[back](../README.md#top)\n")
    (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n")
    found = problems(tmp_path)
    assert found == [
        "README.md:3: link 'docs/missing.md': docs/missing.md does not exist",
        "README.md:3: link 'docs/a.md#nope': docs/a.md has no heading with the anchor #nope "
        "(anchors are GitHub's heading slugs)",
        "README.md:4: link '../elsewhere.md' leads out of the repository",
        "README.md:11: link '#fenced': README.md has no heading with the anchor #fenced "
        "(anchors are GitHub's heading slugs)",
        "docs/orphan.md is linked from neither README.md nor another page",
    ]
