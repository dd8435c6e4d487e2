"""The documents' links resolve: every relative link in README.md and docs/ names a file
that exists (and, for a Markdown file, a heading it has), and every "ADR NNNN" names an
ADR in docs/adr/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
ADR_MENTION = re.compile(r"\bADR (\d{4})\b")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", document.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            slug = _slug(heading.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def _broken(document: Path, adr_dir: Path = ROOT / "docs" / "adr") -> list[str]:
    text = FENCE.sub("", document.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        name, _, fragment = target.partition("#")
        destination = (document.parent / name) if name else document
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in _anchors(destination):
            broken.append(f"{target}: no such heading")
    for number in ADR_MENTION.findall(text):
        if not list(adr_dir.glob(f"{number}-*.md")):
            broken.append(f"ADR {number}: no such ADR")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_link_and_adr_mention_resolves(document: Path) -> None:
    assert _broken(document) == []


def test_the_check_sees_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "adr").mkdir()
    (tmp_path / "adr" / "0001-one.md").write_text("# 1. One\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Some where\n\n```\n# not a heading\n```\n", encoding="utf-8")
    document = tmp_path / "a.md"
    document.write_text(
        "# Title\n\n[ok](b.md#some-where) [ok](#title) [ok](https://example.org/x.md)\n"
        "[bad](c.md) [bad](b.md#not-a-heading) ADR 0001 is there, ADR 0002 is not.\n",
        encoding="utf-8",
    )
    assert _broken(document, tmp_path / "adr") == [
        "c.md: no such file",
        "b.md#not-a-heading: no such heading",
        "ADR 0002: no such ADR",
    ]
