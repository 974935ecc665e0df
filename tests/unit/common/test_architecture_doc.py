"""docs/architecture.md's tables are the ones generated from subjects.py, streams.py and identities.py,
and the generator leaves out no subject."""

from __future__ import annotations

from pathlib import Path

from mpr_common import subjects as s
from mpr_common.architecture import END, NOT_LISTED, START, listed_subjects, render_markdown
from mpr_common.events import PRIORITIES

DOC = Path(__file__).resolve().parents[3] / "docs" / "architecture.md"


def test_the_tables_in_docs_architecture_are_the_generated_ones():
    text = DOC.read_text()
    assert START in text and END in text, "docs/architecture.md lost its generated tables"
    documented = text[text.index(START) + len(START) : text.index(END)]
    assert documented == render_markdown(), (
        "docs/architecture.md differs from the code: run `make architecture` "
        "(python -m mpr_common.architecture --write docs/architecture.md)"
    )


def test_every_subject_of_subjects_py_is_on_the_map():
    listed = {row.subject for row in listed_subjects()}
    for name, value in vars(s).items():
        if name.isupper() and isinstance(value, str) and value.startswith(("mpr.", "$JS.EVENT")):
            assert value in listed or name in NOT_LISTED, name
    for p in PRIORITIES:
        assert s.requested_subject(p) in listed and s.child_subject(p) in listed


def test_every_subject_has_a_producer_and_every_stream_subject_a_consumer_or_reader():
    table = render_markdown().split("#### Streams")[0]
    rows = [r for r in table.splitlines() if r.startswith("| `")]
    assert len(rows) == len(listed_subjects())
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[3] != "—", f"no producer for {cells[0]}"
        assert cells[4] != "—", f"no consumer for {cells[0]}"
