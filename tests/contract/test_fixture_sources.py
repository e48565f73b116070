"""The vendor fixtures are the repository's own record: every file in tests/fixtures is listed in
tests/fixtures/SOURCES.md (where it was published, and how faithful it is) and has its sha256 in
tests/fixtures/checksums.txt, and every file listed there exists. No network, no server, never skipped."""

from __future__ import annotations

import hashlib
import re

from tests.conftest import FIXTURES

SOURCES = FIXTURES / "SOURCES.md"
CHECKSUMS = FIXTURES / "checksums.txt"
RECORDS = {SOURCES.name, CHECKSUMS.name}
FORMS = ("Verbatim", "Extracted", "Converted", "Transcribed by hand", "Listed", "Faithful, not published")


def fixture_files() -> set[str]:
    return {p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*")
            if p.is_file() and p.name not in RECORDS and "__pycache__" not in p.parts}


def sources_rows() -> dict[str, str]:
    """File → the rest of its table row, for every row of SOURCES.md whose first cell is a `vendor/file`."""
    rows = {}
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and (m := re.fullmatch(r"`([^`/\s]+/[^`\s]+)`", cells[0])):
            assert m.group(1) not in rows, f"{m.group(1)} is listed twice in SOURCES.md"
            rows[m.group(1)] = " | ".join(cells[1:])
    return rows


def checksums() -> dict[str, str]:
    sums = {}
    for n, line in enumerate(CHECKSUMS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        assert m, f"checksums.txt line {n} is not `<sha256>  <path>` (sha256sum format): {line!r}"
        assert m.group(2) not in sums, f"{m.group(2)} appears twice in checksums.txt"
        sums[m.group(2)] = m.group(1)
    return sums


def test_the_records_parse_and_are_not_empty():
    # guards the checks below against passing vacuously (e.g. a table format change the parser no longer sees)
    assert fixture_files(), "no fixture files found"
    assert sources_rows(), "no `vendor/file` rows found in SOURCES.md"
    assert checksums(), "no checksums found"


def test_every_fixture_file_is_listed_in_sources_and_checksums():
    files = fixture_files()
    assert sorted(files - sources_rows().keys()) == [], "fixture files missing from SOURCES.md"
    assert sorted(files - checksums().keys()) == [], "fixture files missing from checksums.txt"


def test_every_listed_file_exists():
    files = fixture_files()
    assert sorted(sources_rows().keys() - files) == [], "SOURCES.md lists files that do not exist"
    assert sorted(checksums().keys() - files) == [], "checksums.txt lists files that do not exist"


def test_every_fixture_matches_its_checksum():
    """A fixture is evidence of what a vendor sends: changing one silently changes what the contract tests prove."""
    sums = checksums()
    changed = [name for name in sorted(fixture_files() & sums.keys())
               if hashlib.sha256((FIXTURES / name).read_bytes()).hexdigest() != sums[name]]
    assert changed == [], "fixtures whose bytes differ from checksums.txt (add a new file instead of editing one)"


def test_every_source_row_names_a_source_and_how_faithful_the_file_is():
    for name, rest in sources_rows().items():
        source, _, form = rest.rpartition(" | ")
        assert source.strip(), f"{name}: no source given"
        assert any(form.strip("* ").startswith(f) for f in FORMS), f"{name}: form {form!r} is not one of {FORMS}"
