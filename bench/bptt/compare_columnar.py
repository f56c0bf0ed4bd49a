"""A SequenceStore from a Parquet file vs reading the same column into NumPy with pyarrow alone.

The file holds ``--sequences`` sequences of lognormal lengths (``exp(N(--mu, 1))``, at least 1)
and ``--features`` float32 features per step, as a ``list<fixed_size_list<float32, F>>``
column, written to a temporary folder. Contenders, interleaved, medians of ``--repeats``:

- ``numpy``: ``pq.read_table(...).column(...)`` flattened to a ``R x F`` array plus lengths
  from the offsets (what one would write by hand; no store);
- ``store_memory``: ``SequenceStore.from_parquet(file, column)`` (the whole file read, the
  rows a view of Arrow's buffer);
- ``store_streamed``: ``SequenceStore.from_parquet(file, column, path=...)``, record batches
  of ``--batch-size`` rows streamed into a store on disk (bounded memory), then memory-mapped.

Prints seconds, MB/s of row data and each contender's time over ``numpy``'s.

    python bench/bptt/compare_columnar.py [--sequences 200000] [--mu 3.0] [--features 8]
                                          [--batch-size 65536] [--repeats 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared helpers, when run as a path
from _json_out import write_json  # noqa: E402
from _timing import median, time_cases  # noqa: E402


def write_file(path: Path, sequences: int, mu: float, features: int) -> int:
    """Write the Parquet file; return the number of row-data bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    lengths = np.maximum(1, rng.lognormal(mu, 1.0, sequences)).astype(np.int64)
    values = rng.standard_normal((int(lengths.sum()), features), dtype=np.float32)
    steps = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), features)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    pq.write_table(pa.table({"x": pa.ListArray.from_arrays(offsets, steps)}), path)
    return values.nbytes


def read_numpy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=["x"]).column("x").combine_chunks()
    width = column.type.value_type.list_size
    rows = column.flatten().flatten().to_numpy().reshape(-1, width)
    return rows, np.diff(column.offsets.to_numpy())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=200_000)
    parser.add_argument("--mu", type=float, default=3.0)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=65_536)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from fastseq.bptt.store import SequenceStore

    folder = Path(tempfile.mkdtemp(prefix="compare_columnar-"))
    try:
        source = folder / "data.parquet"
        nbytes = write_file(source, args.sequences, args.mu, args.features)
        counter = itertools.count()
        cases = {
            "numpy": lambda: read_numpy(source),
            "store_memory": lambda: SequenceStore.from_parquet(source, "x"),
            "store_streamed": lambda: SequenceStore.from_parquet(source, "x", path=folder / f"s{next(counter)}",
                                                                 batch_size=args.batch_size),
        }
        rows, lengths = read_numpy(source)
        store = cases["store_streamed"]()
        assert store.lengths.tolist() == lengths.tolist() and np.array_equal(store.data, rows)
        times = time_cases(cases, args.repeats, warmup=False)
        base = median(times["numpy"])
        result = {"sequences": args.sequences, "rows": int(lengths.sum()), "features": args.features,
                  "mb": nbytes / 1e6, "batch_size": args.batch_size}
        print(f"{args.sequences} sequences, {int(lengths.sum())} rows x {args.features} float32 "
              f"({nbytes / 1e6:.0f} MB), medians of {args.repeats}, interleaved")
        for name, ts in times.items():
            t = median(ts)
            result[name] = {"median_s": t, "mb_s": nbytes / 1e6 / t, "ratio_to_numpy": t / base}
            print(f"  {name:15s} {t:7.3f} s  {nbytes / 1e6 / t:8.0f} MB/s  x{t / base:5.2f} numpy's time")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
