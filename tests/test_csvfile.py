import numpy as np
import pytest
from conftest import kaggle_csv, tiny_images
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mnist_doe.readers import csvfile
from mnist_doe.common.errors import DataError

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LABELS = st.one_of(
    st.integers(0, 300).map(str),
    st.sampled_from([chr(c) for c in range(ord("A"), ord("Z"))]),
)
# text planted in a pixel cell, and the reason the reader must give for it
BAD_PIXELS = {
    "": csvfile.EMPTY,
    "NaN": csvfile.NAN,
    "abc": csvfile.NOT_A_NUMBER,
    "7x": csvfile.NOT_A_NUMBER,
    "-1": csvfile.OUT_OF_RANGE,
    "256": csvfile.OUT_OF_RANGE,
    "1e9": csvfile.OUT_OF_RANGE,
    "3.5": csvfile.NOT_AN_INTEGER,
}


@st.composite
def tables(draw, min_side=1):
    side = draw(st.integers(min_side, 5))
    n = draw(st.integers(1, 12))
    pixels = draw(arrays(np.uint8, (n, side * side)))
    labels = draw(st.lists(LABELS, min_size=n, max_size=n))
    header = draw(st.sampled_from(["digit", "fashion", None]))
    return pixels, labels, header


def column_name(header, column, labelled=True):
    """The name the reader gives file column `column` (0 = label when labelled)."""
    if labelled and column == 0:
        return "label"
    pixel = column - labelled
    return f"pixel{pixel + (header == 'fashion')}"


@PROPERTY
@given(table=tables())
def test_any_uint8_table_reads_back_exactly(tmp_path, table):
    pixels, labels, header = table
    read = csvfile.read_train(kaggle_csv(tmp_path / "train.csv", pixels, labels, header=header))
    assert read.pixels.dtype == np.uint8
    np.testing.assert_array_equal(read.pixels, pixels)
    assert read.labels.tolist() == labels
    assert read.labels.dtype.kind == "U"
    first_line = 2 if header else 1
    assert read.lines.tolist() == list(range(first_line, first_line + len(labels)))
    assert read.issues == []
    assert read.side ** 2 == pixels.shape[1]


@PROPERTY
@given(table=tables(min_side=3), data=st.data())
def test_each_planted_bad_cell_is_reported_at_its_line_and_column(tmp_path, table, data):
    pixels, labels, header = table
    n, p = pixels.shape
    cells = pixels.astype(object)
    labels = list(labels)
    spots = data.draw(
        st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, p)), min_size=1, max_size=4)
    )
    expected = set()
    for row, column in spots:
        if column == 0:
            labels[row] = data.draw(st.sampled_from(["", "  "]))
            value, reason = labels[row], csvfile.MISSING_LABEL
        else:
            value = data.draw(st.sampled_from(sorted(BAD_PIXELS)))
            cells[row, column - 1] = value
            reason = BAD_PIXELS[value]
        expected.add((row, row + (2 if header else 1), column_name(header, column), value, reason))

    read = csvfile.read_train(kaggle_csv(tmp_path / "train.csv", cells, labels, header=header))

    assert {tuple(issue) for issue in read.issues} == expected
    assert len(read.lines) == n
    bad_rows = {issue.row for issue in read.issues}
    assert (n - len(bad_rows)) + len(bad_rows) == n == len(read.pixels)
    keep = np.ones_like(pixels, dtype=bool)
    for row, column in spots:
        if column:
            keep[row, column - 1] = False
            assert read.pixels[row, column - 1] == 0
    np.testing.assert_array_equal(read.pixels[keep], pixels[keep])


def read_in_steps(monkeypatch, step: int, read, *args, **kwargs):
    """What `read` gives (a Table's fields, or the DataError's text) reading ROWS_PER_STEP=`step` rows at a time."""
    monkeypatch.setattr(csvfile, "ROWS_PER_STEP", step)
    try:
        table = read(*args, **kwargs)
    except DataError as err:
        return str(err)
    return (table.pixels.tolist(), None if table.labels is None else table.labels.tolist(), table.lines.tolist(),
            table.issues, None if table.ids is None else table.ids.tolist(), table.columns)


@PROPERTY
@given(table=tables(min_side=2), data=st.data())
def test_a_file_read_a_few_rows_at_a_time_reads_as_in_one_step(tmp_path, monkeypatch, table, data):
    """Bad cells and missing labels in any step, a column of numbers in one step and of text in
    another: the rows, issues and errors do not depend on the rows read per step."""
    pixels, labels, header = table
    n, p = pixels.shape
    cells, labels = pixels.astype(object), list(labels)
    for row, column in data.draw(st.sets(st.tuples(st.integers(0, n - 1), st.integers(0, p)), max_size=4)):
        if column == 0:
            labels[row] = ""
        else:
            cells[row, column - 1] = data.draw(st.sampled_from(sorted(BAD_PIXELS)))
    step = data.draw(st.integers(1, 4))
    train = kaggle_csv(tmp_path / "train.csv", cells, labels, header=header)
    test = kaggle_csv(tmp_path / "test.csv", cells, labels if data.draw(st.booleans()) else None, header=header)
    at_once = read_in_steps(monkeypatch, 10_000, csvfile.read_train, train)
    assert read_in_steps(monkeypatch, step, csvfile.read_train, train) == at_once
    assert read_in_steps(monkeypatch, step, csvfile.read_test, test, p) == read_in_steps(
        monkeypatch, 10_000, csvfile.read_test, test, p)


@PROPERTY
@given(table=tables(min_side=3), data=st.data())
def test_a_bad_test_cell_raises_naming_its_line_and_column(tmp_path, table, data):
    pixels, _, header = table
    n, p = pixels.shape
    row, column = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, p - 1))
    value = data.draw(st.sampled_from(sorted(BAD_PIXELS)))
    cells = pixels.astype(object)
    cells[row, column] = value
    path = kaggle_csv(tmp_path / "test.csv", cells, header=header)
    line = row + (2 if header else 1)
    name = column_name(header, column, labelled=False)
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, p)
    assert str(err.value) == (
        f"{path} line {line}, column {name}: {BAD_PIXELS[value]} ({value!r}); a test row cannot be dropped"
    )


def counts_up(labels):
    return any(labels == [str(i) for i in range(start, start + len(labels))] for start in (0, 1))


@PROPERTY
@given(table=tables(), labelled=st.booleans())
def test_test_file_reads_back_with_or_without_labels(tmp_path, table, labelled):
    pixels, labels, header = table
    train = csvfile.read_train(kaggle_csv(tmp_path / "train.csv", pixels, labels, header=header))
    path = kaggle_csv(tmp_path / "test.csv", pixels, labels if labelled else None, header=header)
    if labelled and header is None and counts_up(labels):
        # no header, and the first column could be ImageIds 1..N as well as labels: refused
        with pytest.raises(DataError, match="cannot tell whether the first column"):
            csvfile.read_test(path, pixels.shape[1], train=train)
        return
    read = csvfile.read_test(path, pixels.shape[1], train=train)
    np.testing.assert_array_equal(read.pixels, pixels)
    assert (read.labels.tolist() if labelled else read.labels) == (labels if labelled else None)
    assert read.ids is None


def test_kaggle_header_with_column_numbers_is_a_header(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("label," + ",".join(map(str, range(16))) + "\n3," + ",".join(["0"] * 16) + "\n")
    read = csvfile.read_train(path)
    assert read.has_header and read.lines.tolist() == [2]


def test_crlf_line_ends_and_byte_order_mark(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"\xef\xbb\xbflabel,a,b,c,d\r\n1,0,1,2,3\r\n2,4,5,6,7\r\n\r\n")
    read = csvfile.read_train(path)
    assert read.pixels.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert read.labels.tolist() == ["1", "2"]
    assert read.lines.tolist() == [2, 3]


def test_several_bad_test_cells_are_counted(tmp_path):
    path = kaggle_csv(tmp_path / "test.csv", [[0, "x", 0, 0], [1, 1, "", 1]], header=None)
    with pytest.raises(DataError, match=r"^.*test\.csv line 1, column pixel1: not a number \('x'\); .* \(2 bad cells in all\)$"):
        csvfile.read_test(path, 4)


def test_missing_test_label_raises(tmp_path):
    path = kaggle_csv(tmp_path / "test.csv", tiny_images([0, 1], side=2), ["1", ""])
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 4)
    assert str(err.value) == f"{path} line 3, column label: missing label (''); a test row cannot be dropped"


# one test per structural error, with its exact message


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as err:
        csvfile.read_train(tmp_path / "train.csv")
    assert str(err.value) == f"{tmp_path / 'train.csv'}: file not found"


def test_empty_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("\n\n")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path}: file is empty"


def test_header_only(tmp_path):
    path = kaggle_csv(tmp_path / "train.csv", np.zeros((0, 4), dtype=int), [], header="digit")
    path.write_text("label,pixel0,pixel1,pixel2,pixel3\n")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path}: header only, no data rows"


def test_extra_index_column(tmp_path):
    path = tmp_path / "train.csv"
    rows = [",".join(["", "label"] + [f"pixel{j}" for j in range(784)])]
    rows += [",".join([str(i), "3"] + ["0"] * 784) for i in range(2)]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == (
        f"{path}: 785 pixel columns after the label is not a square image (e.g. 784 = 28x28); "
        "is there an extra index column?"
    )


def test_pixel_count_not_square(tmp_path):
    path = kaggle_csv(tmp_path / "train.csv", np.zeros((2, 6), dtype=int), ["1", "2"])
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path}: 6 pixel columns after the label is not a square image (e.g. 784 = 28x28)"


def test_train_without_label_column(tmp_path):
    path = kaggle_csv(tmp_path / "train.csv", np.zeros((2, 16), dtype=int))
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == (
        f"{path}: 16 columns make a 4x4 image with no label column; "
        "a training file starts with the label (e.g. 785 = label + 28x28)"
    )


def test_train_with_one_column(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("label\n3\n")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == (
        f"{path}: 1 column; a training file needs a label column and then the pixels "
        "(e.g. 785 = label + 28x28)"
    )


def test_test_with_too_few_columns(tmp_path):
    path = kaggle_csv(tmp_path / "test.csv", np.zeros((2, 9), dtype=int))
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 16)
    assert str(err.value) == (
        f"{path}: 9 columns, fewer than the training file's 16 pixel columns; {EXPECTED_16}"
    )


EXPECTED_16 = (
    "expected 16 (pixels only), 17 (a label or an ImageId column, then the pixels) "
    "or 18 (ImageId, label, then the pixels)"
)


def test_test_with_too_many_columns(tmp_path):
    path = kaggle_csv(tmp_path / "test.csv", np.zeros((2, 19), dtype=int))
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 16)
    assert str(err.value) == (
        f"{path}: 19 columns, more than the training file's 16 pixels allow; {EXPECTED_16}; "
        "is there an extra index column?"
    )


def test_test_with_two_unnamed_extra_columns(tmp_path):
    path = kaggle_csv(tmp_path / "test.csv", np.zeros((2, 18), dtype=int))
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 16)
    assert str(err.value) == (
        f"{path}: 18 columns for the training file's 16 pixels, and the header does not name the other 2; "
        "name them ImageId and label in a header line; columns 'pixel0', 'pixel1', 'pixel2', ..., 'pixel17' (18 in all)"
    )


def test_row_with_wrong_field_count(tmp_path):
    path = kaggle_csv(tmp_path / "train.csv", [[0, 0, 0, 0], [0, 0, 0], [0, 0, 0, 0, 0]], ["1", "2", "3"])
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path} line 3: 4 fields, expected 5 (2 such lines in all)"


def test_blank_line_inside_the_data(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("label,a,b,c,d\n1,0,0,0,0\n\n2,0,0,0,0\n")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path} line 3: blank line inside the data"


def test_pixels_scaled_to_unit_range(tmp_path):
    pixels = np.full((12, 4), 0.5)
    path = kaggle_csv(tmp_path / "train.csv", pixels, ["1"] * 12)
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == (
        f"{path}: 12 of 12 rows hold fractional pixel values (scaled to 0..1?); expected whole numbers 0..255"
    )


# the answers file (ImageId,Label)


def write_answers(path, rows, header=True):
    path.write_text(("ImageId,Label\n" if header else "") + "".join(f"{i},{label}\n" for i, label in rows))
    return path


@pytest.mark.parametrize("header", [True, False])
def test_answers_in_any_order(tmp_path, header):
    path = write_answers(tmp_path / "answers.csv", [(2, "B"), (3, "C"), (1, "A")], header=header)
    assert csvfile.read_answers(path, 3).tolist() == ["A", "B", "C"]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([(1, "A"), (2, "B")], "{path}: 2 answers for 3 test images; expected one row per test image (ImageId 1..3)"),
        ([(1, "A"), (2, "B"), (2, "C")], "{path} line 4: ImageId 2 repeats line 3"),
        ([(1, "A"), (2, "B"), (4, "C")], "{path} line 4: ImageId 4 is outside 1..3"),
        ([(1, "A"), ("two", "B"), (3, "C")], "{path} line 3, column ImageId: 'two' is not a whole number"),
        ([(1, "A"), (2, ""), (3, "C")], "{path} line 3, column Label: missing label"),
    ],
)
def test_answers_errors(tmp_path, rows, message):
    path = write_answers(tmp_path / "answers.csv", rows)
    with pytest.raises(DataError) as err:
        csvfile.read_answers(path, 3)
    assert str(err.value) == message.format(path=path)


def test_answers_with_three_columns(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text("ImageId,Label,Extra\n1,A,x\n")
    with pytest.raises(DataError) as err:
        csvfile.read_answers(path, 1)
    assert str(err.value) == f"{path}: 3 columns; an answers file has two, ImageId,Label"


def test_quoted_fields_may_hold_commas(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(
        '"label","pixel0","pixel1","pixel2","pixel3"\n'
        '"T-shirt, top",0,1,2,3\n'
        'Trouser,4,5,6,7\n'
        '"Bag, small","8",9,10,11\n'
    )
    read = csvfile.read_train(path)
    assert read.has_header and read.issues == []
    assert read.labels.tolist() == ["T-shirt, top", "Trouser", "Bag, small"]
    assert read.pixels.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert read.lines.tolist() == [2, 3, 4]


def test_bad_cell_on_a_line_with_a_quoted_comma_is_named_by_its_column(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('label,a,b,c,d\n"Bag, small",0,1,x,3\nShirt,4,5,6,7\n')
    read = csvfile.read_train(path)
    assert read.issues == [csvfile.Issue(0, 2, "c", "x", csvfile.NOT_A_NUMBER)]
    assert read.labels.tolist() == ["Bag, small", "Shirt"]


def test_unclosed_quote_is_a_wrong_field_count(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('label,a,b,c,d\n1,0,1,2,3\n2,"4,5,6,7\n3,8,9,10,11\n')
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == f"{path} line 3: 2 fields, expected 5"


# header detection never eats a data row (issue 18, case 2)


def empty_first_row(path, n_rows, n_pixels, labelled):
    """A headerless file whose first row is all empty cells, then n_rows - 1 good rows."""
    width = n_pixels + labelled
    rows = [",".join([""] * width)]
    rows += [",".join((["1"] if labelled else []) + [str(i % 256)] * n_pixels) for i in range(1, n_rows)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_headerless_test_file_with_an_empty_first_row_keeps_it_and_refuses_it(tmp_path):
    path = empty_first_row(tmp_path / "test.csv", 100, 16, labelled=False)
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 16)
    assert str(err.value) == (
        f"{path} line 1, column pixel0: empty (''); a test row cannot be dropped (16 bad cells in all)"
    )


def test_headerless_training_file_with_an_empty_first_row_counts_it(tmp_path):
    path = empty_first_row(tmp_path / "train.csv", 300, 16, labelled=True)
    read = csvfile.read_train(path)
    assert not read.has_header and read.rows == 300
    assert read.lines.tolist() == list(range(1, 301))
    assert read.labels[0] == "" and {issue.row for issue in read.issues} == {0}
    assert read.issues[0] == csvfile.Issue(0, 1, "label", "", csvfile.MISSING_LABEL)


@pytest.mark.parametrize("first", ["NaN", "NA", "", "  ", "0", "-1", "3.5"])
def test_a_first_row_of_empty_or_numeric_cells_is_data(tmp_path, first):
    path = tmp_path / "train.csv"
    path.write_text(",".join([first] * 5) + "\n" + "1,0,0,0,0\n")
    read = csvfile.read_train(path)
    assert not read.has_header and read.rows == 2 and read.lines.tolist() == [1, 2]


def test_answers_whose_first_row_has_an_empty_image_id_keep_it(tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text(",A\n2,B\n")
    with pytest.raises(DataError) as err:
        csvfile.read_answers(path, 2)
    assert str(err.value) == f"{path} line 1, column ImageId: '' is not a whole number"


# the test file's layout (issue 18, case 3)


def train_table(tmp_path, labels, side=4):
    return csvfile.read_train(kaggle_csv(tmp_path / "train.csv", tiny_images(labels, side=side), labels, header=None))


def test_headerless_image_id_column_is_not_read_as_labels(tmp_path):
    train = train_table(tmp_path, [str(d) for d in range(10)] * 3)
    pixels = tiny_images(range(100), seed=3)
    path = kaggle_csv(tmp_path / "test.csv", pixels, [str(i) for i in range(1, 101)], header=None)
    read = csvfile.read_test(path, 16, train=train)
    assert read.labels is None
    assert read.ids.tolist() == [str(i) for i in range(1, 101)]
    np.testing.assert_array_equal(read.pixels, pixels)
    assert read.layout == "ImageId, 16 pixels"


@pytest.mark.parametrize(
    "names, ids, labels",
    [
        (["ImageId"], ["7", "3", "9"], None),
        (["id"], ["7", "3", "9"], None),
        (["label"], None, ["1", "0", "1"]),
        (["ImageId", "label"], ["7", "3", "9"], ["1", "0", "1"]),
    ],
)
def test_test_layout_from_header_names(tmp_path, names, ids, labels):
    pixels = tiny_images([0, 1, 2], seed=4)
    columns = {"ImageId": ids, "id": ids, "label": labels}
    lines = [",".join(names + [f"pixel{j}" for j in range(16)])]
    for r in range(3):
        lines.append(",".join([columns[n][r] for n in names] + [str(v) for v in pixels[r]]))
    path = tmp_path / "test.csv"
    path.write_text("\n".join(lines) + "\n")
    read = csvfile.read_test(path, 16)
    np.testing.assert_array_equal(read.pixels, pixels)
    assert (None if read.ids is None else read.ids.tolist()) == ids
    assert (None if read.labels is None else read.labels.tolist()) == labels


def test_label_named_in_the_last_column_of_a_test_file(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("a,b,c,d,label\n1,2,3,4,5\n")
    read = csvfile.read_test(path, 4)
    assert read.pixels.tolist() == [[1, 2, 3, 4]] and read.labels.tolist() == ["5"]


def test_unnamed_first_column_that_could_be_labels_or_ids_is_an_error(tmp_path):
    train = train_table(tmp_path, ["1", "2", "3"] * 2)
    path = kaggle_csv(tmp_path / "test.csv", tiny_images([0, 1, 2]), ["1", "2", "3"], header=None)
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 16, train=train)
    assert str(err.value) == (
        f"{path}: cannot tell whether the first column (lines 1..3) holds labels or ImageIds: its values count "
        "up by one and every one is a training label; name it (label or ImageId) in a header line; "
        "no header, 17 columns"
    )


def test_unnamed_first_column_of_unknown_values_is_an_error(tmp_path):
    train = train_table(tmp_path, ["0", "1"] * 3)
    path = kaggle_csv(tmp_path / "test.csv", tiny_images([0, 1, 2]), ["12", "40", "1"], header=None)
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 16, train=train)
    assert str(err.value) == (
        f"{path}: the first column (lines 1..3) is neither a label column (2 of its 3 values, e.g. '12', are no "
        "training label) nor ImageIds counting up by one; name it (label or ImageId) in a header line; "
        "no header, 17 columns"
    )


def test_header_naming_a_label_that_leaves_too_few_pixels(tmp_path):
    path = kaggle_csv(tmp_path / "test.csv", np.zeros((2, 15), dtype=int), ["1", "2"])
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 16)
    assert str(err.value) == (
        f"{path}: the header names a label column ('label'), which leaves 15 pixel columns for the training "
        "file's 16; columns 'label', 'pixel0', 'pixel1', ..., 'pixel14' (16 in all)"
    )


def test_repeated_image_id_in_a_test_file(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text("ImageId,a,b,c,d\n1,0,0,0,0\n2,0,0,0,0\n1,0,0,0,0\n")
    with pytest.raises(DataError) as err:
        csvfile.read_test(path, 4)
    assert str(err.value) == f"{path} line 4, column ImageId: ImageId 1 repeats line 2"


def test_answers_follow_the_test_files_image_ids(tmp_path):
    path = write_answers(tmp_path / "answers.csv", [(30, "B"), (10, "A"), (20, "C")])
    assert csvfile.read_answers(path, 3, np.array(["20", "10", "30"])).tolist() == ["C", "A", "B"]
    with pytest.raises(DataError, match=r"line 2, column ImageId: ImageId 30 is not in the test file's ImageId column"):
        csvfile.read_answers(path, 3, np.array(["20", "10", "40"]))


# labels (issue 18, case 5)


def test_label_named_in_the_last_column_of_a_training_file(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("pixel0,pixel1,pixel2,pixel3,label\n0,1,2,3,7\n4,5,6,7,8\n")
    read = csvfile.read_train(path)
    assert read.labels.tolist() == ["7", "8"]
    assert read.pixels.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert read.layout == "4 pixels, label"


def test_training_header_without_a_label_and_a_pixel_first_is_refused(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("pixel0,pixel1,pixel2,pixel3,digit\n0,1,2,3,7\n")
    with pytest.raises(DataError) as err:
        csvfile.read_train(path)
    assert str(err.value) == (
        f"{path}: no label column: the header names no label, and its column 1 is 'pixel0', a pixel; "
        "name the label column 'label' (first or last); columns 'pixel0', 'pixel1', 'pixel2', ..., 'digit' (5 in all)"
    )


def test_label_named_in_a_middle_column_is_refused(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("a,b,label,c,d\n0,1,2,3,7\n")
    with pytest.raises(DataError, match=r"column 3 is named 'label'; the label must be the first column"):
        csvfile.read_train(path)


@pytest.mark.parametrize(
    "raw, label",
    [("5", "5"), ("5.0", "5"), ("05", "5"), ("+5", "5"), (" 5 ", "5"), ("5.", "5"), ("-0", "0"),
     ("2.50", "2.5"), ("1e1", "10"), ("Bag", "Bag"), ("007x", "007x"), ("T-shirt, top", "T-shirt, top")],
)
def test_labels_are_normalised_once(raw, label):
    assert csvfile.normalise_label(raw) == label


def test_numeric_label_spellings_are_one_label_in_training_and_test(tmp_path):
    train = kaggle_csv(tmp_path / "train.csv", tiny_images(range(4)), ["5", "5.0", "05", "6"])
    test = kaggle_csv(tmp_path / "test.csv", tiny_images(range(2)), ["5.0", "6.00"])
    assert csvfile.read_train(train).labels.tolist() == ["5", "5", "5", "6"]
    assert csvfile.read_test(test, 16).labels.tolist() == ["5", "6"]
    answers = write_answers(tmp_path / "answers.csv", [(1, "5.0"), (2, "06")])
    assert csvfile.read_answers(answers, 2).tolist() == ["5", "6"]
