"""Pages the documentation generates instead of keeping by hand.

- the API reference: one page per subpackage, listing exactly the names in its ``__all__``;
- the benchmark pages: one per JSON file that ``bench/`` wrote into ``docs/benchmarks/``,
  with its command, machine notes and tables, and the printed output beside it;
- a sphinx-gallery scraper for the PNG files the gallery's examples write.

Generated files are written only when their text changes, so a rebuild stays incremental.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import fastseq


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _title(text: str, mark: str = "=") -> str:
    return f"{text}\n{mark * len(text)}\n"


def write_api_pages(folder: Path) -> None:
    """``folder/index.rst`` and one page per subpackage, from the public names."""
    import importlib

    toc = "\n".join(f"   {sub}" for sub in fastseq.SUBPACKAGES)
    top = [n for n in fastseq.__all__ if n not in fastseq.SUBPACKAGES and not n.startswith("_")]
    _write(folder / "index.rst", _title("API reference") + (
        "\nThe public names, from the docstrings. Each subpackage's page lists exactly the names in\n"
        "its ``__all__``; the top level re-exports the flagship names.\n\n"
        ".. toctree::\n   :maxdepth: 1\n\n" + toc + "\n\n" + _title("Top level", "-") + "\n"
        + "".join(f"- :py:obj:`fastseq.{n}`\n" for n in top)))
    for sub in fastseq.SUBPACKAGES:
        module = importlib.import_module(f"fastseq.{sub}")
        names = list(module.__all__)
        body = "".join(f"   {n}\n" for n in names)
        summary = (module.__doc__ or "").strip().split("\n\n")[0]
        _write(folder / f"{sub}.rst", _title(f"fastseq.{sub}") + "\n" + summary + "\n\n"
               f".. currentmodule:: fastseq.{sub}\n\n"
               + "".join(_entry(getattr(module, n), sub, n) for n in names))


def _entry(obj: Any, sub: str, name: str) -> str:
    import inspect

    kind = "autoclass" if inspect.isclass(obj) else "autofunction" if callable(obj) else "autodata"
    return f"{_title(name, '-')}\n.. {kind}:: fastseq.{sub}.{name}\n\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return " - ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k, v in row.items() if k not in columns and not isinstance(v, (dict, list))
                    or k not in columns and isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _render(value: Any, depth: int) -> str:
    """Scalars as a list, lists of records as tables, nested records under sub-headings."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        nested = [k for v in value for k, x in v.items() if isinstance(x, list) and x and isinstance(x[0], dict)]
        if not nested:
            return _table(value)
        out = ""
        for v in value:
            label = ", ".join(_cell(x) for k, x in v.items() if not isinstance(x, (dict, list)))
            out += f"\n{'#' * min(depth, 6)} {label}\n\n" + _render(v, depth + 1)
        return out
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if not isinstance(v, (dict, list))}
        out = "".join(f"- **{k}**: {_cell(v)}\n" for k, v in scalars.items() if depth > 2)
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                if isinstance(v, list) and not isinstance(v[0], dict):
                    out += f"- **{k}**: {_cell(v)}\n"
                    continue
                out += f"\n{'#' * min(depth, 6)} {k}\n\n" + _render(v, depth + 1)
        return out
    return f"{_cell(value)}\n"


def write_benchmark_pages(source: Path, out: Path) -> None:
    """One page per ``source/*.json`` under ``out``, and ``source/index.md`` listing them."""
    pages = []
    for path in sorted(source.glob("*.json")):
        data = json.loads(path.read_text())
        lines = [f"# {path.stem}\n"]
        if isinstance(data, dict):
            for key in ("command", "note", "machine", "torch", "repeats"):
                if key in data:
                    lines.append(f"- **{key}**: " + (f"`{data[key]}`" if key == "command" else _cell(data[key])) + "\n")
            rest = {k: v for k, v in data.items() if k not in ("command", "note", "machine", "torch", "repeats")}
        else:
            rest = {"results": data}
        lines.append(f"\nSource: `docs/benchmarks/{path.name}`.\n")
        lines.append(_render(rest, 2))
        printed = path.with_suffix(".txt")
        if printed.exists():
            lines.append(f"\n## As printed\n\n```text\n{printed.read_text().rstrip()}\n```\n")
        _write(out / f"{path.stem}.md", "".join(lines))
        pages.append(path.stem)
    for old in out.glob("*.md"):
        if old.stem not in pages:
            old.unlink()
    _write(source / "index.md", "# Benchmarks\n\n"
           "Every figure the README and the guide quote comes from one of these runs: each page\n"
           "shows the command that produced it, the spread between repeats, and the output as it\n"
           "was printed. They were measured on a shared 2-core CPU machine; ratios between\n"
           "peers measured in the same process carry over better than absolute speeds.\n\n"
           "```{toctree}\n:maxdepth: 1\n:glob:\n\npages/*\n```\n")


_SEEN: dict[str, set[str]] = {}


def png_scraper(block, block_vars, gallery_conf) -> str:
    """sphinx-gallery scraper: the PNG files an example wrote into its folder since the last block."""
    from sphinx_gallery.scrapers import figure_rst

    folder = os.getcwd()
    seen = _SEEN.setdefault(block_vars["src_file"], set())
    new = sorted(p for p in Path(folder).glob("*.png") if str(p) not in seen)
    paths = []
    for png, target in zip(new, block_vars["image_path_iterator"]):
        os.replace(png, target)  # out of the source tree, into the built gallery
        paths.append(target)
    return figure_rst(paths, gallery_conf["src_dir"])
