"""SequenceStore.from_arrow / from_parquet / from_hf: columnar layouts give the store from_sequences gives."""
import builtins

import numpy as np
import pytest

from fastseq.bptt.store import SequenceStore

pa = pytest.importorskip("pyarrow")  # in the test extra; the base install does not need it
pq = pytest.importorskip("pyarrow.parquet")


def _sequences(n=23, width=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(t), width)).astype(dtype) for t in rng.integers(1, 9, n)]


def _assert_same(store, sequences, dtype=None):
    expected = SequenceStore.from_sequences(sequences, dtype=dtype)
    assert store.lengths.tolist() == expected.lengths.tolist()
    assert store.feature_shape == expected.feature_shape and store.dtype == expected.dtype
    for got, want in zip(store, expected):
        np.testing.assert_array_equal(got, want)


def _fixed(sequences):
    """A list<fixed_size_list<float32, F>> array of the sequences, built from flat buffers."""
    width = sequences[0].shape[1]
    flat = pa.array(np.concatenate(sequences).reshape(-1))
    steps = pa.FixedSizeListArray.from_arrays(flat, width)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), steps)


def _long_table(sequences, ids=None):
    ids = ids if ids is not None else [10 * i + 7 for i in range(len(sequences))]
    step_ids = np.repeat(ids, [len(s) for s in sequences])
    rows = np.concatenate(sequences)
    return pa.table({"id": step_ids, **{f"f{j}": rows[:, j] for j in range(rows.shape[1])}})


def test_list_of_scalars_is_t_by_1_and_zero_copy():
    seqs = [s[:, :1] for s in _sequences()]
    table = pa.table({"x": [s.ravel().tolist() for s in seqs], "other": list(range(len(seqs)))})
    table = table.cast(pa.schema([("x", pa.list_(pa.float32())), ("other", pa.int64())]))
    store = SequenceStore.from_arrow(table, "x")
    _assert_same(store, seqs)
    values = table.column("x").chunk(0).values.to_numpy(zero_copy_only=True)
    assert np.shares_memory(store.data, values)


def test_fixed_size_list_column_is_t_by_f_and_zero_copy():
    seqs = _sequences(width=4)
    array = _fixed(seqs)
    store = SequenceStore.from_arrow(pa.chunked_array([array]), "x")
    _assert_same(store, seqs)
    buffer = array.values.values.buffers()[1]
    assert store.data.ctypes.data == buffer.address


def test_list_of_lists_with_constant_inner_length():
    seqs = _sequences(width=2, dtype=np.float64)
    store = SequenceStore.from_arrow(pa.table({"x": [s.tolist() for s in seqs]}))
    _assert_same(store, seqs)


def test_sliced_array_reads_only_its_rows():
    seqs = _sequences(width=4)
    store = SequenceStore.from_arrow(_fixed(seqs).slice(5, 7))
    _assert_same(store, seqs[5:12])


def test_several_chunks_are_copied_into_one_store():
    seqs = _sequences(width=4)
    chunked = pa.chunked_array([_fixed(seqs[:10]), _fixed(seqs[10:])])
    store = SequenceStore.from_arrow(chunked)
    _assert_same(store, seqs)
    assert not np.shares_memory(store.data, chunked.chunk(0).values.values.to_numpy())


def test_long_layout_with_scalar_columns_and_casting():
    seqs = _sequences(width=3)
    store = SequenceStore.from_arrow(_long_table(seqs), ["f0", "f1", "f2"], id_column="id", dtype=np.float64)
    _assert_same(store, seqs, dtype=np.float64)


def test_long_layout_single_column_is_zero_copy_and_string_ids_work():
    seqs = [s[:, :1] for s in _sequences()]
    table = _long_table(seqs, ids=[f"s{i}" for i in range(len(seqs))]).select(["id", "f0"])
    store = SequenceStore.from_arrow(table, id_column="id")
    _assert_same(store, seqs)
    assert np.shares_memory(store.data, table.column("f0").chunk(0).to_numpy())


def test_long_layout_refuses_an_id_in_two_runs():
    seqs = _sequences(n=3)
    table = _long_table(seqs, ids=[1, 2, 1])
    with pytest.raises(ValueError, match=r"contiguous in id_column 'id'.*id 1"):
        SequenceStore.from_arrow(table, ["f0"], id_column="id")


def test_path_writes_a_memory_mapped_store(tmp_path):
    seqs = _sequences(width=4)
    store = SequenceStore.from_arrow(_fixed(seqs), path=tmp_path / "s")
    _assert_same(store, seqs)
    _assert_same(SequenceStore.load(tmp_path / "s"), seqs)
    assert store._map is not None


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_parquet_streamed_in_small_batches_gives_the_same_store(tmp_path, batch_size):
    seqs = _sequences(n=31, width=4)
    pq.write_table(pa.table({"x": _fixed(seqs), "n": list(range(len(seqs)))}), tmp_path / "x.parquet",
                   row_group_size=7)
    store = SequenceStore.from_parquet(tmp_path / "x.parquet", "x", path=tmp_path / "s", batch_size=batch_size)
    _assert_same(store, seqs)
    _assert_same(SequenceStore.from_parquet(tmp_path / "x.parquet", "x"), seqs)


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_parquet_long_layout_joins_sequences_split_across_batches(tmp_path, batch_size):
    seqs = _sequences(n=17, width=2)
    pq.write_table(_long_table(seqs), tmp_path / "x.parquet", row_group_size=5)
    store = SequenceStore.from_parquet(tmp_path / "x.parquet", ["f0", "f1"], id_column="id", path=tmp_path / "s",
                                       batch_size=batch_size)
    _assert_same(store, seqs)


def test_parquet_long_layout_refuses_an_id_that_comes_back(tmp_path):
    pq.write_table(_long_table(_sequences(n=3), ids=[5, 6, 5]), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"id 5 again"):
        SequenceStore.from_parquet(tmp_path / "x.parquet", ["f0"], id_column="id", path=tmp_path / "s", batch_size=2)


def test_parquet_refuses_an_empty_file_and_a_bad_batch_size(tmp_path):
    pq.write_table(pa.table({"x": pa.array([], pa.list_(pa.float32()))}), tmp_path / "e.parquet")
    with pytest.raises(ValueError, match="at least one sequence, got an empty table"):
        SequenceStore.from_parquet(tmp_path / "e.parquet", "x", path=tmp_path / "s")
    with pytest.raises(ValueError, match="batch_size to be a positive integer, got 0"):
        SequenceStore.from_parquet(tmp_path / "e.parquet", "x", path=tmp_path / "s", batch_size=0)


@pytest.mark.parametrize("data, kwargs, error, message", [
    (pa.table({"x": [[[1.0, 2.0], [3.0]]]}), {"column": "x"}, ValueError,
     r"same number of features 2, got 1 in the sequence at row 0"),
    (pa.table({"x": [[1.0], None]}), {"column": "x"}, ValueError, r"column 'x' to hold no nulls, got 1 .*row 1"),
    (pa.table({"x": [[1.0, None]]}), {"column": "x"}, ValueError, r"values of column 'x' to hold no nulls"),
    (pa.table({"x": [["a", "b"]]}), {"column": "x"}, TypeError, r"values of column 'x' to hold numbers.*string"),
    (pa.table({"x": [1.0, 2.0]}), {"column": "x"}, TypeError, r"column 'x' to be a list column.*id_column"),
    (pa.table({"x": [[1.0]]}), {"column": "y"}, KeyError, r"column 'y' in the table, got columns \['x'\]"),
    (pa.table({"x": [[1.0]], "z": [[2.0]]}), {}, ValueError, r"column to name the list column.*got None"),
    (pa.table({"x": pa.array([], pa.list_(pa.float32()))}), {"column": "x"}, ValueError, "empty table"),
    (pa.table({"x": [[1.0], []]}), {"column": "x"}, ValueError, r"non-empty, got an empty list at row 1"),
    (pa.table({"x": [1.0]}), {"column": "x", "id_column": "id"}, KeyError, r"id_column 'id' in the table"),
    (pa.table({"id": [1, None], "x": [1.0, 2.0]}), {"column": "x", "id_column": "id"}, ValueError,
     r"id_column 'id' to hold no nulls"),
    ([[1.0]], {}, TypeError, r"data to be a pyarrow Table.*got list"),
])
def test_errors_name_the_argument_and_what_came(data, kwargs, error, message):
    with pytest.raises(error, match=message):
        SequenceStore.from_arrow(data, **kwargs)


def test_inputs_are_not_changed():
    seqs = _sequences(width=4)
    array = _fixed(seqs)
    before = array.values.values.to_numpy().copy()
    store = SequenceStore.from_arrow(array, dtype=np.float64)
    np.testing.assert_array_equal(array.values.values.to_numpy(), before)
    assert store.dtype == np.float64


def test_missing_pyarrow_names_the_extra(monkeypatch):
    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ImportError, match=r"fastseq\[arrow\]"):
        SequenceStore.from_arrow([[1.0]])


def test_hugging_face_dataset_through_its_arrow_table(tmp_path):
    datasets = pytest.importorskip("datasets")
    seqs = _sequences(n=9, width=2)
    ds = datasets.Dataset.from_dict({"x": [s.tolist() for s in seqs], "label": list(range(len(seqs)))})
    store = SequenceStore.from_hf(ds, "x", dtype=np.float32)
    _assert_same(store, seqs)
    picked = ds.select([4, 1, 7])
    _assert_same(SequenceStore.from_hf(picked, "x", dtype=np.float32, path=tmp_path / "s"),
                 [seqs[4], seqs[1], seqs[7]])
    long = datasets.Dataset.from_dict({"id": np.repeat(np.arange(len(seqs)), [len(s) for s in seqs]),
                                      "v": np.concatenate(seqs)[:, 0]})
    _assert_same(SequenceStore.from_hf(long, "v", id_column="id", dtype=np.float32), [s[:, :1] for s in seqs])
    with pytest.raises(TypeError, match="datasets.Dataset.*got dict"):
        SequenceStore.from_hf({"x": [[1.0]]}, "x")
