"""paragraph_layout: exact cells on small hand-made paragraphs, and the width limits."""
from __future__ import annotations

import numpy as np
import pytest

from fastseq.mosaic import paragraph_layout


def test_two_short_words_share_a_line_that_they_fill():
    cells = paragraph_layout([[0], [1]], width=3).cells
    assert cells.dtype == np.int64 and cells.tolist() == [[0, -1, 1]]


def test_no_clusters_is_one_blank_line():
    lay = paragraph_layout([], width=3)
    assert lay.cells.dtype == np.int64 and lay.cells.tolist() == [[-1, -1, -1]] and lay.clusters == ()


def test_breaks_minimize_squared_slack_not_a_steeper_power():
    # slack 5, 2, 1 (squares 30) beats 0, 4, 4 (squares 32), though its cubes are larger
    clusters = [[0, 1, 2], [3, 4, 5, 6], [7], [8, 9], [10, 11, 12, 13]]
    assert paragraph_layout(clusters, width=8).cells.tolist() == [
        [-1, -1, 0, 1, 2, -1, -1, -1],
        [-1, 3, 4, 5, 6, -1, 7, -1],
        [8, 9, -1, 10, 11, 12, 13, -1]]


def test_equal_cost_breaks_keep_the_last_line_short():
    # 2 + 1 words and 1 + 2 words both cost 0 + 4: the shorter last line wins
    assert paragraph_layout([[0], [1], [2]], width=3).cells.tolist() == [[0, -1, 1], [-1, 2, -1]]


def test_width_may_reach_the_widest_useful_line_and_no_further():
    lay = paragraph_layout([[0]], width=1 << 16)  # small paragraphs may still be 65,536 wide
    assert lay.cells.shape == (1, 65_536) and lay.cells[0, 32_767] == 0
    with pytest.raises(ValueError, match=r"^Expected width <= 65536 \(all 1 clusters fit on one line\), "
                                         r"got 65537\.$"):
        paragraph_layout([[0]], width=65_537)


def test_widest_line_of_a_long_cluster_holds_it_with_a_blank_each_side():
    word = np.arange(70_000)
    lay = paragraph_layout([word], width=70_002)
    assert lay.cells.shape == (1, 70_002)
    assert lay.cells[0, 0] == lay.cells[0, -1] == -1 and lay.cells[0, 1:-1].tolist() == word.tolist()
    with pytest.raises(ValueError, match=r"^Expected width <= 70002 \(all 1 clusters fit on one line\), "
                                         r"got 70003\.$"):
        paragraph_layout([word], width=70_003)


@pytest.mark.parametrize("width, error, got", [(0, ValueError, "0"), (2.5, TypeError, "float 2.5")])
def test_bad_width_is_named_in_the_error(width, error, got):
    with pytest.raises(error, match=rf"^Expected width to be an integer >= 1, got {got}\.$"):
        paragraph_layout([[0]], width=width)


def test_a_cluster_filling_whole_lines_leaves_no_blank_line_after_it():
    # 8 tiles on lines of 4 fill two lines exactly: no remainder word, so no third line
    assert paragraph_layout([list(range(8))], 4).cells.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    # a remainder of one tile is a word of its own, centred on a third line
    assert paragraph_layout([list(range(9))], 4).cells.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [-1, 8, -1, -1]]
