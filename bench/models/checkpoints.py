"""What a cell trained, written to disk (`run --save-models`) and read back (`checkpoint =`).

A cell's folder `OUT/models/<cell>/` holds

- word vectors: `vectors.bin`, word2vec binary (gensim `save_word2vec_format(binary=True)`),
  which reads back as a `kind = "vectors"` model (bench.models.vectors);
- an LM or biLM: `model.safetensors` (the weights; tied tensors stored once) and
  `checkpoint.json` (CHECKPOINT_SCHEMA: the model name, its resolved config, the vocabulary's
  size and sha256), which `[model.NAME] checkpoint = "OUT/models/<cell>"` loads instead of
  training. A checkpoint loads only into the config and vocabulary it was trained with.

The files are written into a temporary folder beside the target, which is then renamed:
a reader never sees half a folder. The result records every file and its sha256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from gensim.models import KeyedVectors
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from bench.data.prepared import PreparedCorpus
from bench.errors import BenchError
from bench.models.vectors import file_sha256

CHECKPOINT_SCHEMA = "lm-lineage.checkpoint/1"
WEIGHTS, CONFIG, VECTORS = "model.safetensors", "checkpoint.json", "vectors.bin"


def vocab_identity(prepared: PreparedCorpus) -> dict:
    """The vocabulary an LM's ids index: its size and the sha256 of its words in id order."""
    words = "\n".join(prepared.vocab.words).encode("utf-8")
    return {"size": len(prepared.vocab), "sha256": hashlib.sha256(words).hexdigest()}


def _write_folder(folder: Path, write: Callable[[Path], None]) -> dict:
    """Run `write(tmp)` into a fresh temporary folder, then put it at `folder` (replacing an
    older one); returns {file name: {path, sha256, bytes}}."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        write(tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {path.name: {"path": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size}
            for path in sorted(folder.iterdir())}


def save_vectors(vectors: KeyedVectors, folder: Path) -> dict:
    return {"folder": str(folder),
            "files": _write_folder(folder, lambda tmp: vectors.save_word2vec_format(str(tmp / VECTORS),
                                                                                      binary=True))}


def save_module(module: torch.nn.Module, model: str, config, prepared: PreparedCorpus, folder: Path) -> dict:
    """An LM's or biLM's weights and the config that rebuilds it."""
    header = {"schema": CHECKPOINT_SCHEMA, "model": model, "config": _as_json(config),
              "vocab": vocab_identity(prepared), "corpus": prepared.name}

    def write(tmp: Path) -> None:
        save_model(module, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(header, indent=1) + "\n")

    return {"folder": str(folder), "files": _write_folder(folder, write)}


def _as_json(config) -> dict:
    # Through JSON, so a tuple field compares equal to the list it reads back as.
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _folder(path: str | Path, where: str) -> Path:
    folder = Path(path)
    if folder.is_file() and folder.name in (WEIGHTS, CONFIG):
        folder = folder.parent
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise BenchError(f"{where}.checkpoint {path}: expected a folder that `run --save-models` wrote, with "
                         f"{CONFIG} and {WEIGHTS}")
    return folder


def read_header(path: str | Path, where: str) -> dict:
    folder = _folder(path, where)
    try:
        header = json.loads((folder / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{folder / CONFIG}: not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("schema") != CHECKPOINT_SCHEMA:
        raise BenchError(f"{folder / CONFIG}: expected a checkpoint of schema {CHECKPOINT_SCHEMA!r}")
    return header


def check_matches(path: str | Path, model: str, config, where: str) -> None:
    """Before a run writes anything: the checkpoint was trained as this model, with this config."""
    header = read_header(path, where)
    if header.get("model") != model:
        raise BenchError(f"{where}.checkpoint {path}: saved by model '{header.get('model')}', expected a "
                         f"checkpoint of '{model}'")
    expected = _as_json(config)
    if header.get("config") != expected:
        saved = header.get("config") or {}
        changes = [f"{key} {saved.get(key)!r} (saved) vs {expected.get(key)!r}"
                   for key in sorted(set(saved) | set(expected)) if saved.get(key) != expected.get(key)]
        raise BenchError(f"{where}.checkpoint {path}: its config does not match this model's: "
                         + ", ".join(changes[:4]) + "; set the same config (or train anew)")


def identity(path: str | Path, where: str) -> dict:
    """What identifies a checkpoint: its folder and the sha256 of its weights."""
    folder = _folder(path, where)
    return {"folder": str(folder), "sha256": file_sha256(folder / WEIGHTS)}


def load_module(module: torch.nn.Module, path: str | Path, prepared: PreparedCorpus, where: str) -> dict:
    """Load the checkpoint's weights into `module` (built from the same config); returns what
    the training record keeps of it. The vocabulary must be the one it was trained on."""
    folder = _folder(path, where)
    header = read_header(folder, where)
    vocab = vocab_identity(prepared)
    if header.get("vocab") != vocab:
        raise BenchError(f"{where}.checkpoint {path}: trained on another vocabulary ({header.get('vocab', {}).get('size')} "
                         f"words, corpus '{header.get('corpus')}') than this cell's ({vocab['size']} words, corpus "
                         f"'{prepared.name}'); expected the same corpus, tokenizer and vocab settings")
    try:
        load_model(module, str(folder / WEIGHTS), strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise BenchError(f"{folder / WEIGHTS}: the weights do not load into '{header['model']}' "
                         f"({str(exc).splitlines()[0]})") from exc
    return {"checkpoint": identity(folder, where)}


def save_trained(trained, model: str, config, prepared: PreparedCorpus, folder: Path) -> dict | None:
    """Save what a build returned: vectors, or the network of an LM (TrainedLM.module) or biLM
    (TrainedBiLM.model); None when it holds nothing to save (Kneser-Ney's counts)."""
    if isinstance(trained, KeyedVectors):
        return save_vectors(trained, folder)
    module = getattr(trained, "module", None) or getattr(trained, "model", None)
    if isinstance(module, torch.nn.Module):
        return save_module(module, model, config, prepared, folder)
    return None
