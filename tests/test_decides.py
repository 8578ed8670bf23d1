"""Where a value is chosen in the user's source (`shapecheck/decides.py`), read with `ast` alone: the argument
followed out through the callers to a literal, a default or a constant; never a value something else changes."""

from __future__ import annotations

import textwrap

import pytest

from shapecheck import decides
from shapecheck.trace import Location

SOURCE = textwrap.dedent('''\
    from torch import nn
    NUM_CLASSES = 5


    class TagNet(nn.Module):
        def __init__(self, num_tags, width=4):
            super().__init__()
            self.head = nn.Linear(width * 4, num_tags)


    class Encoder(nn.Module):
        def __init__(self, hidden):
            size = 0
            size += hidden
            self.rnn = nn.LSTM(size, 8)
            self.out = nn.Linear(8, NUM_CLASSES) if hidden else nn.Identity()


    def literal():
        return TagNet(num_tags=10)


    def default():
        return TagNet(3 * 4)
    ''')


@pytest.fixture
def module(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(SOURCE)
    return lambda line, *callers: Location("models.py", line, str(path),
                                           callers=tuple(Location("models.py", c, str(path)) for c in callers))


def test_a_parameter_is_followed_to_the_callers_literal(module):
    decision = decides.deciding_argument(module(8, 20), "Linear", 1, "out_features")
    assert (decision.location.line, decision.callee, decision.keyword, decision.present) == (20, "TagNet", "num_tags",
                                                                                              True)


def test_arithmetic_of_literals_is_chosen_there_but_says_what_a_number_would_replace(module):
    decision = decides.deciding_argument(module(8, 24), "Linear", 1, "out_features")
    assert (decision.location.line, decision.index, decision.expression) == (24, 0, "3 * 4")


def test_a_module_constant_is_where_the_value_is_chosen(module):
    decision = decides.deciding_argument(module(16), "Linear", 1, "out_features")
    assert (decision.location.line, decision.constant) == (2, "NUM_CLASSES")


def test_a_name_something_else_changes_is_never_taken_for_its_first_value(module):
    with pytest.raises(decides.Undecided, match="`size`"):   # `size = 0` then `size += hidden`
        decides.deciding_argument(module(15), "LSTM", 0, "input_size")


def test_an_expression_is_undecided_and_named(module):
    with pytest.raises(decides.Undecided, match="`width \\* 4` at models.py:8"):
        decides.deciding_argument(module(8, 20), "Linear", 0, "in_features")


def test_a_call_on_one_branch_names_its_condition(module):
    assert decides.condition_of(module(16), "Linear") == "hidden"
    assert decides.condition_of(module(8), "Linear") == ""
