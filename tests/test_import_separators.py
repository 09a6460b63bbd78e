"""A CSV file separated by something else than commas is refused with what to do, instead of
being read as one column whose name is the whole header."""

from __future__ import annotations

import io

import pytest

from segments.importer.readers import CsvRows, InputError


@pytest.mark.parametrize(("separator", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_another_separator_is_named_with_the_fix(separator: str, name: str) -> None:
    text = separator.join(["email", "name", "country"]) + "\n" + separator.join("abc") + "\n"
    with pytest.raises(InputError) as refused:
        CsvRows(io.StringIO(text))
    message = str(refused.value)
    assert message.startswith("line 1: ")
    assert f"{name}-separated" in message and "Save it with commas" in message


def test_a_real_one_column_file_and_commas_are_read() -> None:
    assert CsvRows(io.StringIO("email\na@example.com\n")).header == ["email"]
    rows = CsvRows(io.StringIO('email,name\na@example.com,"Smith; Ann"\n'))
    assert rows.header == ["email", "name"]
    (row,) = list(rows)
    assert row.values == {"email": "a@example.com", "name": "Smith; Ann"}
