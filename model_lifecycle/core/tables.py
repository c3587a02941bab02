"""Reading tables the way every step does: a file, a folder, a glob or a URI, Parquet or CSV, through
pyarrow datasets, so that a step can read only the columns it needs, in batches."""

from __future__ import annotations

import glob as globbing
from pathlib import Path
from typing import Any

from model_lifecycle.errors import BadInput


def open_table(source: str, what: str = "window") -> Any:
    """A pyarrow dataset over a file, folder, glob or URI; Parquet unless the files are CSV."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    if not source or not source.strip():
        raise BadInput(f"{what}: no path given")
    try:
        if "://" in source:
            filesystem, root = pafs.FileSystem.from_uri(source)
            info = filesystem.get_file_info(root)
            if info.type == pafs.FileType.NotFound:
                raise BadInput(f"{what} {source!r} not found")
            paths: Any = root
            fmt = "csv" if root.endswith(".csv") else "parquet"
            return ds.dataset(paths, filesystem=filesystem, format=fmt, partitioning="hive")
        if any(ch in source for ch in "*?["):
            files = sorted(globbing.glob(source, recursive=True))
            files = [f for f in files if Path(f).is_file()]
            if not files:
                raise BadInput(f"{what} {source!r} matches no files")
            return ds.dataset(files, format=_format(files), partitioning="hive")
        path = Path(source)
        if not path.exists():
            raise BadInput(f"{what} {source!r} not found", hint="pass a file, a folder of Parquet/CSV files, a glob or a URI")
        if path.is_dir():
            files = [str(f) for f in sorted(path.rglob("*")) if f.is_file() and f.suffix in (".parquet", ".pq", ".csv")]
            if not files:
                raise BadInput(f"{what} {source!r} holds no Parquet or CSV files")
            return ds.dataset(files, format=_format(files), partitioning=ds.partitioning(flavor="hive"),
                              partition_base_dir=str(path))
        return ds.dataset(str(path), format=_format([str(path)]))
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - unreadable, not Parquet, permission denied
        raise BadInput(f"{what} {source!r} could not be read: {short(exc)}") from exc


def _format(files: list[str]) -> str:
    kinds = {"csv" if f.endswith(".csv") else "parquet" for f in files}
    if len(kinds) > 1:
        raise BadInput(f"found both CSV and Parquet files ({files[0]}, ...): give one kind")
    return kinds.pop()


def short(exc: BaseException) -> str:
    """The first line of an error, for a one-line message."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]
