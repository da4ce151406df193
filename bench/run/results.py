"""One fixed JSON schema for every result cell, written atomically.

A result holds: the cell (model, family, corpus, seed, matrix), its key (hashes of the
resolved config and of the data read: bench.run.keys), status (ok | failed, with
the reason), metrics (rows by name: `wordsim`, `analogy`, ...; each name's row type and the
keys its rows must carry are declared in bench.eval.metrics), the metric definitions
(direction, unit, aggregation), the resolved config, the dataset block (fingerprint, split sizes,
unknown-token rates, vocabulary size), the device, library versions, git commit and
timings (per phase: wall seconds, tokens/s, peak memory).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import torch

from bench.errors import BenchError
from bench.eval.metrics import TABLES

SCHEMA = "lm-lineage.result/2"
# Results of schema 1 carry no key; `lm-lineage migrate` adds it (bench.run.migrate).
UNKEYED_SCHEMA = "lm-lineage.result/1"
LIBRARIES = ("torch", "numpy", "scipy", "pandas", "datasets", "gensim", "transformers")
RESULT_FILE_MODE = 0o644  # mkstemp makes its file private; results and reports are there to be read


def library_versions() -> dict:
    versions: dict[str, str | None] = {"python": platform.python_version()}  # None: not installed
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    """HEAD of the checkout the code runs from, with `+dirty` when it has local changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def device_info(device: torch.device, threads: int) -> dict:
    info: dict[str, object] = {"type": device.type, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": threads}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, cuda=torch.version.cuda,
                    driver=_nvidia_driver(), total_mem_mb=props.total_memory / 2**20)
    else:
        info["name"] = "cpu"
    return info


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def write_json_atomic(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=1, default=str) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, RESULT_FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        # missing_ok: a Ctrl-C can land just after the rename, and must stay a KeyboardInterrupt
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: Path) -> None:
    """Remove what write_bytes_atomic leaves when its process is killed (SIGKILL) between
    creating its temp file and renaming it: nothing ever reads those files."""
    for stale in folder.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


# JSON files of the suite that are not cell results: a run's matrix, and the quality-gate
# record kept in results/ (bench.run.gates).
NOT_RESULTS = {"matrix.json", "quality_gates.json", "checkpoint.json"}  # checkpoint: bench.models.checkpoints


def load_results(folder: Path) -> list[dict]:
    """Every result JSON under `folder` (recursively); files of another schema are an error,
    and so are two cells of one model, corpus and matrix made with different keys.

    Recursive, so one folder holding several matrix outputs (`a/cells/*.json`,
    `b/cells/*.json`) reads as one set of results, for one combined report.
    """
    if not folder.is_dir():
        raise BenchError(f"results folder {folder} does not exist")
    results: list[dict] = []
    made_by: dict[tuple[str, str, str], tuple[Path, str]] = {}  # (matrix, model, corpus) -> first file, key hash
    for path in sorted(folder.rglob("*.json")):
        if path.name in NOT_RESULTS:
            continue
        result = read_result(path)
        cell = result["cell"]
        if result.get("status") == "ok":
            first = made_by.setdefault((cell["matrix"], cell["model"], cell["corpus"]), (path, result["key"]["hash"]))
            if first[1] != result["key"]["hash"]:
                raise BenchError(f"{first[0]} and {path}: model {cell['model']} on {cell['corpus']} (matrix "
                                 f"{cell['matrix']}) made with two different configs or data; re-run one with "
                                 f"--force, or keep them in separate folders")
        results.append(result)
    if not results:
        raise BenchError(f"results folder {folder} holds no result files")
    return results


# What readers of a result (the report, resuming) index, so a hand-edited or truncated file is
# refused when read, with its path and the missing key, not as a KeyError deep in a reader.
# A failed cell whose worker died has only its cell, status and error (bench.run.executors).
CELL_KEYS = ("model", "corpus", "seed", "matrix")
OK_KEYS = ("key", "config", "metrics", "timings")
CONFIG_KEYS = ("model", "tokenizer", "vocab", "eval")  # what the report groups settings by
TIMING_KEYS = ("device", "wall_s", "tokens_per_s", "peak_rss_mb")


def _need_keys(path: Path, where: str, value, keys: tuple[str, ...]) -> None:
    if not isinstance(value, dict):
        holding = f" with {', '.join(keys)}" if keys else ""
        raise BenchError(f"{path}: {where} is {type(value).__name__}, expected an object{holding}")
    missing = [key for key in keys if key not in value]
    if missing:
        raise BenchError(f"{path}: {where} lacks {', '.join(map(repr, missing))}; expected {', '.join(keys)}")


def check_result_shape(path: Path, result: dict) -> None:
    """Refuse a result of the right schema whose parts lack what readers index (BenchError)."""
    _need_keys(path, "the result", result, ("cell", "status"))
    _need_keys(path, "cell", result["cell"], CELL_KEYS)
    if result["status"] != "ok":
        _need_keys(path, f"the {result['status']!r} result", result, ("error",))
        return
    _need_keys(path, "the ok result", result, OK_KEYS)
    _need_keys(path, "key", result["key"], ("hash",))
    _need_keys(path, "config", result["config"], CONFIG_KEYS)
    _need_keys(path, "metrics", result["metrics"], ())
    _need_keys(path, "timings", result["timings"], ())
    for phase, timing in result["timings"].items():
        _need_keys(path, f"timings.{phase}", timing, TIMING_KEYS)
    # Each registered metric's rows carry its row type's required fields, and each group of
    # optional ones whole or not at all; rows of other names are stored but not read.
    for name, table in TABLES.items():
        rows = result["metrics"].get(name, [])
        if not isinstance(rows, list):
            raise BenchError(f"{path}: metrics.{name} is {type(rows).__name__}, expected a list of rows")
        for i, row in enumerate(rows):
            _need_keys(path, f"metrics.{name}[{i}]", row, table.keys_of(row) if isinstance(row, dict) else ())


def read_result(path: Path) -> dict:
    """One result file; a file that is not JSON, of another schema or lacking a part that
    readers index is a one-line error."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: not a valid JSON result ({exc})") from exc
    if isinstance(payload, dict) and payload.get("schema") == UNKEYED_SCHEMA:
        raise BenchError(f"{path}: schema {UNKEYED_SCHEMA!r} has no cell key; run `lm-lineage migrate "
                         f"{path.parent.parent}` once to add it")
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        found = payload.get("schema") if isinstance(payload, dict) else type(payload).__name__
        raise BenchError(f"{path}: schema {found!r}, expected {SCHEMA!r}")
    check_result_shape(path, payload)
    return payload


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
