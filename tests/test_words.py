"""Counts in words in what a user reads."""

from mnist_doe.common.words import plural


def test_plural_says_one_thing_and_many_things():
    assert plural(1, "epoch") == "1 epoch"
    assert plural(2, "epoch") == "2 epochs"
    assert plural(0, "cell") == "0 cells"
    assert plural(1, "class", "classes") == "1 class" and plural(10, "class", "classes") == "10 classes"
    assert plural(1, "training row") == "1 training row"
    assert plural(60000, "row") == "60000 rows" and plural(60000, "row", grouped=True) == "60,000 rows"
    assert plural(1, "image", grouped=True) == "1 image"
