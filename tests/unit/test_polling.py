"""`eventually`, the suite's one polling helper: what it returns, awaits and says when it gives up."""

from __future__ import annotations

import pytest

from tests.polling import eventually


async def test_returns_the_first_truthy_value_of_a_plain_check() -> None:
    values = iter([None, [], 0, ["found"], ["later"]])
    assert await eventually(lambda: next(values), interval=0) == ["found"]


async def test_awaits_a_check_that_is_a_coroutine_function() -> None:
    calls = 0

    async def third_time() -> int:
        nonlocal calls
        calls += 1
        return calls if calls >= 3 else 0

    assert await eventually(third_time, interval=0) == 3


async def test_gives_up_naming_what_it_waited_for_and_the_last_value() -> None:
    answers: list[int] = []
    with pytest.raises(AssertionError, match=r"not within 0.05 s: the answer \(last seen: \[\]\)"):
        await eventually(lambda: answers, timeout=0.05, what="the answer")


async def test_a_long_last_value_is_cut_short() -> None:
    with pytest.raises(AssertionError) as failure:
        await eventually(lambda: Falsy("y" * 10_000), timeout=0.01)
    assert "yyy..." in str(failure.value) and len(str(failure.value)) < 500


class Falsy:
    def __init__(self, text: str) -> None:
        self.text = text

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return self.text


async def test_an_exception_in_the_check_is_not_swallowed() -> None:
    def broken() -> bool:
        raise KeyError("no such metric")

    with pytest.raises(KeyError, match="no such metric"):
        await eventually(broken)
