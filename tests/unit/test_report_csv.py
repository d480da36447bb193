"""The report's CSV: RFC 4180 line ends, and no text cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.recording.monitor.report import FORMULA_STARTS, REPORT_COLUMNS, report_csv


def row(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = dict.fromkeys(REPORT_COLUMNS, 0)
    base.update(candidate_id="cand-1", name="Ada", coverage_pct=98.5)
    base.update(changes)
    return base


def parsed(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_lines_end_with_crlf() -> None:
    text = report_csv([row(), row(candidate_id="cand-2")])
    assert text.count("\r\n") == 3 and "\n" not in text.replace("\r\n", "")


@pytest.mark.parametrize("start", FORMULA_STARTS)
@pytest.mark.parametrize("column", REPORT_COLUMNS)
def test_every_text_column_is_escaped(column: str, start: str) -> None:
    """Whichever column carries host-supplied text, a formula start is shown as text."""
    value = f'{start}HYPERLINK("http://evil.example")'
    (cells,) = parsed(report_csv([row(**{column: value})]))
    assert cells[column] == "'" + value


def test_numbers_and_plain_text_are_unchanged() -> None:
    (cells,) = parsed(report_csv([row(gaps=-1, name="Zoë O'Neil, MD")]))
    assert cells["gaps"] == "-1" and cells["name"] == "Zoë O'Neil, MD" and cells["coverage_pct"] == "98.5"


@given(st.text(max_size=20), st.text(max_size=20))
def test_no_cell_starts_a_formula(candidate_id: str, name: str) -> None:
    original = row(candidate_id=candidate_id, name=name)
    (cells,) = parsed(report_csv([original]))
    for column in ("candidate_id", "name"):
        assert not cells[column].startswith(FORMULA_STARTS)
        assert cells[column] in (original[column], "'" + original[column])
