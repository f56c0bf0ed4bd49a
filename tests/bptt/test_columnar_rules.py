"""The columnar readers' finer rules: chunked columns, empty tables, row numbers in errors,
what is read from a Parquet file, and where a store is written."""
import numpy as np
import pytest

from fastseq.bptt import columnar
from fastseq.bptt.store import SequenceStore
from test_columnar import _assert_same as _same, _long_table, _sequences

pa = pytest.importorskip("pyarrow")  # in the test extra; the base install does not need it
pq = pytest.importorskip("pyarrow.parquet")


def _fixed_long_table(sequences):
    """The long layout with one fixed_size_list column ``v`` of F features per step."""
    rows = np.concatenate(sequences)
    ids = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    values = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), rows.shape[1])
    return pa.table({"id": ids, "v": values})


# ---------------------------------------------------------------- the long layout

def test_long_layout_fixed_size_list_column_gives_f_features_per_step():
    seqs = _sequences()
    _same(SequenceStore.from_arrow(_fixed_long_table(seqs), "v", id_column="id"), seqs)


def test_long_layout_fixed_size_list_column_with_a_null_step_is_refused():
    values = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(4, dtype=np.float32)), 2)
    values = pa.array([values[0].as_py(), None], type=values.type)
    with pytest.raises(ValueError, match=r"column 'v' to hold no nulls, got 1 \(the first at row 1\)"):
        SequenceStore.from_arrow(pa.table({"id": [0, 0], "v": values}), "v", id_column="id")


def test_long_layout_reads_every_chunk_of_a_chunked_table():
    seqs = _sequences(n=8, width=2)
    table = pa.concat_tables([_long_table(seqs[:5]), _long_table(seqs[5:], ids=[10 * i + 7 for i in range(5, 8)])])
    assert table.column("f0").num_chunks == 2
    _same(SequenceStore.from_arrow(table, ["f0", "f1"], id_column="id"), seqs)
    fixed = pa.concat_tables([_fixed_long_table(seqs[:5]), _fixed_long_table(seqs[5:]).set_column(
        0, "id", pa.array(np.repeat(np.arange(5, 8), [len(s) for s in seqs[5:]])))])
    _same(SequenceStore.from_arrow(fixed, "v", id_column="id"), seqs)


def test_long_layout_finds_a_null_id_in_a_later_chunk():
    first = pa.table({"id": pa.array([0, 0], pa.int64()), "x": pa.array([1.0, 2.0])})
    second = pa.table({"id": pa.array([1, None], pa.int64()), "x": pa.array([3.0, 4.0])})
    with pytest.raises(ValueError, match=r"id_column 'id' to hold no nulls, got 1 \(the first at row 3\)"):
        SequenceStore.from_arrow(pa.concat_tables([first, second]), "x", id_column="id")


def test_long_layout_with_no_rows_is_an_empty_table():
    table = pa.table({"id": pa.array([], pa.int64()), "x": pa.array([], pa.float32())})
    with pytest.raises(ValueError, match="at least one sequence, got an empty table"):
        SequenceStore.from_arrow(table, "x", id_column="id")


def test_long_layout_without_column_needs_a_single_value_column():
    with pytest.raises(ValueError, match=r"name the value column\(s\) of a table with several, got None"):
        SequenceStore.from_arrow(_long_table(_sequences(width=2)), id_column="id")


def test_long_layout_writes_the_store_to_path(tmp_path):
    seqs = _sequences(width=2)
    store = SequenceStore.from_arrow(_long_table(seqs), ["f0", "f1"], id_column="id", path=tmp_path / "s")
    assert store._map is not None
    _same(SequenceStore.load(tmp_path / "s"), seqs)


def test_long_sequences_skip_an_empty_batch_and_read_the_rest():
    seqs = _sequences(n=4, width=2)
    table = _long_table(seqs)
    empty = table.slice(0, 0).to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    batches = iter([empty[0], *table.to_batches(max_chunksize=3)])
    got = list(columnar._long_sequences(pa, batches, ["f0", "f1"], "id"))
    assert len(got) == len(seqs)
    for g, s in zip(got, seqs):
        np.testing.assert_array_equal(g, s)


# ---------------------------------------------------------------- the wide layout

def test_wide_layout_of_nested_lists_with_no_rows_is_an_empty_table():
    table = pa.table({"x": pa.array([], pa.list_(pa.list_(pa.float32())))})
    with pytest.raises(ValueError, match="at least one sequence, got an empty table"):
        SequenceStore.from_arrow(table)


def test_wide_layout_refuses_a_null_step():
    with pytest.raises(ValueError, match=r"the steps of column 'x' to hold no nulls, got 1 \(the first at row 1\)"):
        SequenceStore.from_arrow(pa.table({"x": [[[1.0, 2.0], None]]}))


def test_wide_layout_names_the_sequence_of_a_ragged_step():
    # the first step of the second sequence has one feature where the others have two
    table = pa.table({"x": [[[1.0, 2.0], [3.0, 4.0]], [[5.0], [6.0, 7.0]]]})
    with pytest.raises(ValueError, match=r"got 1 in the sequence at row 1\.$"):
        SequenceStore.from_arrow(table)


def test_record_batch_is_read_like_its_table():
    seqs = _sequences(width=2)
    batch = pa.RecordBatch.from_pydict({"x": [s.tolist() for s in seqs]})
    _same(SequenceStore.from_arrow(batch, dtype=np.float32), seqs)


def test_dtype_equal_to_the_data_keeps_the_zero_copy_view():
    seqs = _sequences(width=2)
    table = pa.table({"x": [s[:, 0].tolist() for s in seqs]}).cast(pa.schema([("x", pa.list_(pa.float32()))]))
    store = SequenceStore.from_arrow(table, dtype=np.float32)
    assert np.shares_memory(store.data, table.column("x").chunk(0).values.to_numpy())


def test_path_replaces_a_store_already_there(tmp_path):
    first, second = _sequences(n=5, width=2, seed=2), _sequences(n=3, width=2, seed=3)
    SequenceStore.from_arrow(pa.table({"x": [s.tolist() for s in first]}), dtype=np.float32, path=tmp_path / "s")
    store = SequenceStore.from_arrow(pa.table({"x": [s.tolist() for s in second]}), dtype=np.float32,
                                     path=tmp_path / "s")
    _same(store, second)


# ---------------------------------------------------------------- Parquet

def _wide_parquet(tmp_path, sequences, name="x.parquet", row_group_size=4):
    path = tmp_path / name
    # the list column comes second: what is read must be the named column, not the first
    pq.write_table(pa.table({"n": np.arange(len(sequences)), "x": [s.tolist() for s in sequences]}), path,
                   row_group_size=row_group_size)
    return path


def test_parquet_reads_the_named_list_column_not_the_first(tmp_path):
    seqs = _sequences(width=2)
    store = SequenceStore.from_parquet(_wide_parquet(tmp_path, seqs), "x", path=tmp_path / "s", dtype=np.float32)
    _same(store, seqs)


def test_parquet_without_column_needs_a_single_list_column(tmp_path):
    path = _wide_parquet(tmp_path, _sequences(width=2))
    with pytest.raises(ValueError, match=r"name the list column\(s\) of a table with several, got None"):
        SequenceStore.from_parquet(path, path=tmp_path / "s")
    with pytest.raises(ValueError, match=r"name the value column\(s\) of a table with several, got None"):
        pq.write_table(_long_table(_sequences(width=2)), tmp_path / "long.parquet")
        SequenceStore.from_parquet(tmp_path / "long.parquet", id_column="id", path=tmp_path / "s2")


def test_parquet_ragged_step_in_a_later_batch_names_the_file_row(tmp_path):
    seqs = [np.ones((2, 2), np.float32) for _ in range(9)]
    rows = [s.tolist() for s in seqs]
    rows[7] = [[1.0, 1.0], [1.0]]
    pq.write_table(pa.table({"x": rows}), tmp_path / "x.parquet", row_group_size=3)
    for size in (2, 3):
        with pytest.raises(ValueError, match=r"got 1 in the sequence at row 7\.$"):
            SequenceStore.from_parquet(tmp_path / "x.parquet", "x", path=tmp_path / f"s{size}", batch_size=size)


def test_parquet_long_layout_names_the_file_row_of_an_id_that_comes_back(tmp_path):
    seqs = _sequences(n=4, width=2)
    lengths = [len(s) for s in seqs]
    ids = np.repeat([0, 1, 2, 0], lengths)  # the last sequence reuses the first one's id
    table = _long_table(seqs).set_column(0, "id", pa.array(ids))
    pq.write_table(table, tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=rf"id 0 again at row {sum(lengths[:3])}\.$"):
        SequenceStore.from_parquet(tmp_path / "x.parquet", ["f0", "f1"], id_column="id", path=tmp_path / "s",
                                   batch_size=3)


def test_parquet_long_layout_without_path_reads_the_whole_table(tmp_path):
    seqs = _sequences(width=2)
    pq.write_table(_long_table(seqs), tmp_path / "x.parquet")
    _same(SequenceStore.from_parquet(tmp_path / "x.parquet", ["f0", "f1"], id_column="id"), seqs)


@pytest.mark.parametrize("bad", [True, 2.5, "4"])
def test_parquet_batch_size_must_be_a_positive_integer(tmp_path, bad):
    path = _wide_parquet(tmp_path, _sequences(width=2))
    with pytest.raises(ValueError, match=rf"batch_size to be a positive integer, got {bad!r}"):
        SequenceStore.from_parquet(path, "x", path=tmp_path / "s", batch_size=bad)


def test_parquet_streams_batches_of_the_size_asked_for(tmp_path, monkeypatch):
    """Memory is bounded by ``batch_size`` rows: the file is read in batches of that size,
    of the named columns only."""
    path = _wide_parquet(tmp_path, _sequences(width=2))
    seen = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        seen.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    SequenceStore.from_parquet(path, "x", path=tmp_path / "s", batch_size=5, dtype=np.float32)
    assert seen == [{"batch_size": 5, "columns": ["x"]}]
    long = _long_table(_sequences(width=2))
    pq.write_table(long.append_column("note", pa.array(["n"] * long.num_rows)), tmp_path / "l.parquet")
    SequenceStore.from_parquet(tmp_path / "l.parquet", ["f0"], id_column="id", path=tmp_path / "s2", batch_size=7)
    assert seen[1] == {"batch_size": 7, "columns": ["id", "f0"]}


def test_parquet_path_replaces_a_store_already_there(tmp_path):
    first, second = _sequences(n=5, width=2, seed=2), _sequences(n=3, width=2, seed=3)
    for i, seqs in enumerate((first, second)):
        store = SequenceStore.from_parquet(_wide_parquet(tmp_path, seqs, f"{i}.parquet"), "x", path=tmp_path / "s",
                                           dtype=np.float32)
    _same(store, second)


# ---------------------------------------------------------------- errors name the column

@pytest.mark.parametrize("data, kwargs, message", [
    (pa.table({"x": [[["a", "b"]]]}), {}, r"the values of column 'x' to hold numbers"),
    (pa.table({"id": [0], "x": ["a"]}), {"column": "x", "id_column": "id"}, r"column 'x' to hold numbers"),
    (pa.table({"id": [0], "v": pa.array([[1.0, None]], pa.list_(pa.float64(), 2))}),
     {"column": "v", "id_column": "id"}, r"column 'v' to hold no nulls"),
    (pa.array([1.0, 2.0]), {}, r"column 'values' to be a list column"),
])
def test_errors_name_the_column_they_found(data, kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        SequenceStore.from_arrow(data, **kwargs)


def test_parquet_stream_errors_name_the_column(tmp_path):
    pq.write_table(pa.table({"x": [[1.0], None, [2.0]]}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"column 'x' to hold no nulls, got 1 \(the first at row 1\)"):
        SequenceStore.from_parquet(tmp_path / "x.parquet", "x", path=tmp_path / "s", batch_size=2)


# ---------------------------------------------------------------- a bare array


def test_bare_list_array_takes_a_one_name_list_as_its_column_name():
    seqs = [np.arange(t, dtype=np.float32) for t in (3, 1, 4)]
    array = pa.array([s.tolist() for s in seqs], pa.list_(pa.float32()))
    for column in (None, "x", ["x"], ("x",)):
        _same(SequenceStore.from_arrow(array, column=column), [s[:, None] for s in seqs])


def test_bare_list_array_with_two_column_names_is_refused_by_name():
    array = pa.array([[1.0, 2.0]], pa.list_(pa.float32()))
    with pytest.raises(ValueError, match=r"one column of a bare ChunkedArray, got \['x', 'y'\]"):
        SequenceStore.from_arrow(pa.chunked_array([array]), column=["x", "y"])
