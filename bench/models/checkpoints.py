"""What a cell trained, written to disk (`run --save-models`) and read back (`checkpoint =`).

A cell's folder `OUT/models/<cell>/` holds

- word vectors: `vectors.bin`, word2vec binary (gensim `save_word2vec_format(binary=True)`),
  which reads back as a `kind = "vectors"` model (bench.models.vectors);
- an LM or biLM: `model.safetensors` (the weights; tied tensors stored once) and
  `checkpoint.json` (CHECKPOINT_SCHEMA: the model name, its resolved config, the vocabulary's
  size and sha256, and the sha256 and size of every other file of the folder), which
  `[model.NAME] checkpoint = "OUT/models/<cell>"` loads instead of training.

A checkpoint loads only into the model, config and vocabulary it was trained with, and only
while its files are the ones it lists: a weights file changed after saving would otherwise
load without a word and change the scores. The runner checks all of it before the run
writes anything (`check_matches`, with the matrix and each corpus), and
the cell checks the files again right before it loads them.

The files are written into a temporary folder beside the target, which is then renamed:
a reader never sees half a folder. The result records every file and its sha256.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
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
from bench.models.contract import HasModule, HasVectors, Trained
from bench.models.vectors import file_sha256

CHECKPOINT_SCHEMA = "lm-lineage.checkpoint/2"  # 2: lists the sha256 and size of its files
UNLISTED_SCHEMA = "lm-lineage.checkpoint/1"
WEIGHTS, CONFIG, VECTORS = "model.safetensors", "checkpoint.json", "vectors.bin"
# What a saved folder and its files get, as results do (bench.run.results.RESULT_FILE_MODE):
# mkdtemp makes its folder private and safetensors its file.
SAVED_FILE_MODE, SAVED_FOLDER_MODE = 0o644, 0o755


def vocab_identity(prepared: PreparedCorpus) -> dict:
    """The vocabulary an LM's ids index: its size and the sha256 of its words in id order."""
    return vocab_words_identity(prepared.vocab.words)


def vocab_words_identity(words: list[str]) -> dict:
    """A vocabulary's size and the sha256 of its words in id order."""
    return {"size": len(words), "sha256": hashlib.sha256("\n".join(words).encode("utf-8")).hexdigest()}


def _write_folder(folder: Path, write: Callable[[Path], None]) -> dict:
    """Run `write(tmp)` into a fresh temporary folder, then put it at `folder` (replacing an
    older one); returns {file name: {path, sha256, bytes}}."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        write(tmp)
        for path in tmp.iterdir():
            os.chmod(path, SAVED_FILE_MODE)
        os.chmod(tmp, SAVED_FOLDER_MODE)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {path.name: {"path": str(path), **_file_identity(path)} for path in sorted(folder.iterdir())}


def _file_identity(path: Path) -> dict:
    return {"sha256": file_sha256(path), "bytes": path.stat().st_size}


def save_vectors(vectors: KeyedVectors, folder: Path) -> dict:
    return {"folder": str(folder),
            "files": _write_folder(folder, lambda tmp: vectors.save_word2vec_format(str(tmp / VECTORS),
                                                                                      binary=True))}


def _apart(module: torch.nn.Module) -> torch.nn.Module:
    """A CPU copy of module whose every tensor has its own storage. On a GPU, cuDNN packs an
    nn.LSTM's weights into one buffer that its parameters view (torch's flatten_parameters),
    and safetensors refuses to save or load tensors that share a storage they do not cover.
    Tied weights (one Parameter registered twice) stay tied: safetensors stores them once."""
    twin = copy.deepcopy(module)
    for tensor in itertools.chain(twin.parameters(), twin.buffers()):
        tensor.data = tensor.data.to("cpu", copy=True)
    return twin


def save_module(module: torch.nn.Module, model: str, config, prepared: PreparedCorpus, folder: Path) -> dict:
    """An LM's or biLM's weights and the config that rebuilds it."""
    header = {"schema": CHECKPOINT_SCHEMA, "model": model, "config": _as_json(config),
              "vocab": vocab_identity(prepared), "corpus": prepared.name,
              # A fine-tuned biLM keeps the vocabulary of the corpus it was pre-trained on (bench.run.finetune).
              "vocab_corpus": prepared.fingerprint.get("vocabulary_of", prepared.name)}

    def write(tmp: Path) -> None:
        save_model(_apart(module), str(tmp / WEIGHTS))
        header["files"] = {WEIGHTS: _file_identity(tmp / WEIGHTS)}
        (tmp / CONFIG).write_text(json.dumps(header, indent=1) + "\n")

    return {"folder": str(folder), "files": _write_folder(folder, write)}


# Model-config fields added after the first saved models and keyed results, each with the value
# that does what the code did before the field existed (impl.elmo: the full training softmax and
# the biLSTM, both in fp32). A checkpoint whose saved config lacks one was made at that value; the
# cell keys (bench.run.keys) leave a field at that value out, so older cells keep their keys.
MODEL_FIELDS_ADDED_LATER: dict[str, object] = {"softmax_samples": 0, "softmax_precision": "fp32",
                                               "softmax_cutoffs": [], "softmax_div_value": 4.0,
                                               "lstm_precision": "fp32"}


def _as_json(config) -> dict:
    # Through JSON, so a tuple field compares equal to the list it reads back as.
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _folder(path: str | Path, where: str, key: str = "checkpoint") -> Path:
    folder = Path(path)
    if folder.is_file() and folder.name in (WEIGHTS, CONFIG):
        folder = folder.parent
    if not (folder / CONFIG).is_file() or not (folder / WEIGHTS).is_file():
        raise BenchError(f"{where}.{key} {path}: expected a folder that `run --save-models` wrote, with "
                         f"{CONFIG} and {WEIGHTS}")
    return folder


def read_header(path: str | Path, where: str, key: str = "checkpoint") -> dict:
    """The checkpoint's header, once every file it lists is checked against its size and sha256
    (`key`: the setting that named it, for the errors)."""
    folder = _folder(path, where, key)
    try:
        header = json.loads((folder / CONFIG).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{folder / CONFIG}: not valid JSON ({exc})") from exc
    if isinstance(header, dict) and header.get("schema") == UNLISTED_SCHEMA:
        raise BenchError(f"{folder / CONFIG}: schema {UNLISTED_SCHEMA!r} lists no sha256 of its files, so its "
                         f"weights cannot be verified; save the model again (run --save-models)")
    if not isinstance(header, dict) or header.get("schema") != CHECKPOINT_SCHEMA:
        raise BenchError(f"{folder / CONFIG}: expected a checkpoint of schema {CHECKPOINT_SCHEMA!r}")
    _check_files(folder, header.get("files"))
    return header


def _check_files(folder: Path, listed) -> None:
    """Each file `checkpoint.json` lists (the weights at least) has the size and sha256 it lists."""
    if not isinstance(listed, dict) or WEIGHTS not in listed \
            or not all(isinstance(entry, dict) for entry in listed.values()):
        raise BenchError(f"{folder / CONFIG}: expected 'files' listing {WEIGHTS} with its sha256 and bytes")
    for name, entry in listed.items():
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise BenchError(f"{folder / CONFIG}: lists the file {name!r}, which is not a file of {folder}")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise BenchError(f"{path}: {size} bytes, {CONFIG} lists {entry.get('bytes')}: the file changed after it "
                             f"was saved; save the model again")
        sha256 = file_sha256(path)
        if sha256 != entry.get("sha256"):
            raise BenchError(f"{path}: sha256 {sha256[:16]}..., {CONFIG} lists {str(entry.get('sha256'))[:16]}...: "
                             f"the file changed after it was saved; save the model again")


def check_matches(path: str | Path, model: str, config, prepared: PreparedCorpus, where: str) -> None:
    """Before a run writes anything: the checkpoint was trained as this model, with this config,
    on the vocabulary `prepared` has."""
    header = read_header(path, where)  # verifies every file's sha256: read once
    if header.get("model") != model:
        raise BenchError(f"{where}.checkpoint {path}: saved by model '{header.get('model')}', expected a "
                         f"checkpoint of '{model}'")
    _check_saved_config(header, path, config, where, "checkpoint")
    _check_saved_vocabulary(header, path, prepared, where)


def check_config(path: str | Path, config, where: str, key: str = "checkpoint") -> dict:
    """The checkpoint's verified header, once its saved config is found to be `config`: the
    network it rebuilds is the one its weights fit (`key`: the setting that named it)."""
    return _check_saved_config(read_header(path, where, key), path, config, where, key)


def _check_saved_config(header: dict, path: str | Path, config, where: str, key: str) -> dict:
    expected = _as_json(config)
    saved_config = header.get("config")
    saved = saved_config if isinstance(saved_config, dict) else {}
    # A field added since it was saved: the value the checkpoint was made at.
    saved = {**{name: value for name, value in MODEL_FIELDS_ADDED_LATER.items() if name in expected}, **saved}
    if saved != expected:
        changes = [f"{name} {saved.get(name)!r} (saved) vs {expected.get(name)!r}"
                   for name in sorted(set(saved) | set(expected)) if saved.get(name) != expected.get(name)]
        raise BenchError(f"{where}.{key} {path}: its config does not match this model's: "
                         + ", ".join(changes[:4]) + "; set the same config (or train anew)")
    return header


def identity(path: str | Path, where: str, key: str = "checkpoint") -> dict:
    """What identifies a checkpoint: its folder and the sha256 of its weights."""
    folder = _folder(path, where, key)
    return {"folder": str(folder), "sha256": file_sha256(folder / WEIGHTS)}


def check_vocabulary(path: str | Path, prepared: PreparedCorpus, where: str) -> dict:
    """The checkpoint was trained on the vocabulary `prepared` has (its words in id order);
    returns its verified header."""
    return _check_saved_vocabulary(read_header(path, where), path, prepared, where)


def _check_saved_vocabulary(header: dict, path: str | Path, prepared: PreparedCorpus, where: str) -> dict:
    saved, vocab = header.get("vocab"), vocab_identity(prepared)
    if saved != vocab:
        saved = saved if isinstance(saved, dict) else {}
        raise BenchError(f"{where}.checkpoint {path}: trained on another vocabulary ({saved.get('size')} words, "
                         f"sha256 {str(saved.get('sha256'))[:12]}..., corpus '{header.get('corpus')}') than corpus "
                         f"'{prepared.name}' gives ({vocab['size']} words, sha256 {vocab['sha256'][:12]}...); "
                         f"expected the same corpus, tokenizer and vocab settings")
    return header


def load_module(module: torch.nn.Module, path: str | Path, prepared: PreparedCorpus, where: str) -> dict:
    """Load the checkpoint's weights into `module` (built from the same config); returns what
    the training record keeps of it. The files are verified and the vocabulary must be the
    one it was trained on."""
    folder = _folder(path, where)
    header = check_vocabulary(folder, prepared, where)
    try:
        twin = _apart(module)
        load_model(twin, str(folder / WEIGHTS), strict=True)
        module.load_state_dict(twin.state_dict())
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise BenchError(f"{folder / WEIGHTS}: the weights do not load into '{header['model']}' "
                         f"({str(exc).splitlines()[0]})") from exc
    return {"checkpoint": identity(folder, where)}


def save_trained(trained: Trained, model: str, config, prepared: PreparedCorpus, folder: Path) -> dict | None:
    """Save what a build returned (bench.models.contract): its vectors (HasVectors) or its network
    (HasModule); None when it holds nothing to save (Kneser-Ney's counts)."""
    if isinstance(trained, HasVectors):
        return save_vectors(trained.vectors, folder)
    if isinstance(trained, HasModule):
        return save_module(trained.module, model, config, prepared, folder)
    return None
