"""The docs travel with the code: every relative link in the Markdown files resolves inside the repository,
and the data contract page lists the fields the code validates."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from fraudstream.model.schema import CANONICAL_FIELDS, REQUIRED_FIELDS

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "var", "build", "dist", "node_modules", ".pytest_cache", ".hypothesis"}
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target "title")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)  # [name]: target
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def markdown_files() -> list[Path]:
    """The Markdown files a clone holds (tracked or new and not ignored); a filtered walk without git."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.md"],
                                cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
        return sorted(ROOT / name for name in listed if name and (ROOT / name).is_file())
    except (OSError, subprocess.CalledProcessError):
        return sorted(p for p in ROOT.rglob("*.md") if not SKIP_DIRS & set(p.relative_to(ROOT).parts))


def links(text: str) -> list[str]:
    """Link targets outside code blocks and inline code."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    return LINK.findall(prose) + REFERENCE.findall(prose)


def anchors(markdown: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", markdown.read_text(encoding="utf-8")), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_there_are_markdown_files_to_check() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/architecture.md", "docs/data-contract.md"} <= names


def test_links_are_found_the_way_they_are_written() -> None:
    text = "see [a](docs/a.md), ![b](img/b.png \"title\"), [c](https://x.org), `[d](no.md)`\n[e]: ../up.md\n```\n[f](g.md)\n```\n"
    assert links(text) == ["docs/a.md", "img/b.png", "https://x.org", "../up.md"]


@pytest.mark.parametrize("markdown", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves_inside_the_repository(markdown: Path) -> None:
    broken: list[str] = []
    for target in links(markdown.read_text(encoding="utf-8")):
        if EXTERNAL.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (markdown.parent / path_part).resolve() if path_part else markdown
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{target}: points outside the repository (a clone does not have it)")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment.lower() not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    assert broken == []


def test_the_data_contract_page_lists_every_field_the_code_validates() -> None:
    page = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\|\s*`(\w+)`\s*\|[^|]*\|\s*(yes|no)\s*\|", page, re.MULTILINE))
    assert set(rows) >= set(CANONICAL_FIELDS), set(CANONICAL_FIELDS) - set(rows)
    assert {name for name in CANONICAL_FIELDS if rows[name] == "yes"} == set(REQUIRED_FIELDS)
