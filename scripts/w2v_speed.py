"""Our word2vec's training speed against gensim's, timed so that a noisy machine cannot tilt it.

    python scripts/w2v_speed.py                    # Lee corpus, CBOW and skip-gram, 3 runs each
    python scripts/w2v_speed.py --corpus brown     # Brown train (800k tokens) from the data root
    python scripts/w2v_speed.py --compete          # also: the slowdown beside one busy process

Every run trains from scratch on the same sentences with the same settings (gensim gets the
already-filtered sentences and min_count=1, so both see one vocabulary), and the runs
alternate: ours, gensim, ours, gensim, ... A change in the machine's load then hits both
alike. A run's speed is epochs * raw tokens / wall seconds of the whole training call
(tables and vocabulary included on both sides). Printed per arch: the median of the
per-pair ratios ours/gensim with their min-max range, and each side's median tokens/s.

--compete runs each pair twice, alone and beside one CPU-bound busy loop (a second Python
process started just before and stopped just after), and prints each side's slowdown
(median tokens/s alone / median beside the busy loop) and the ratio of the two slowdowns,
ours/gensim: above 1, ours loses more of its speed when a core is shared.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from impl.word2vec import Word2VecConfig, train_word2vec  # noqa: E402

# What a corpus is read as: (min_count, default epochs). Lee's are the quick matrix's.
CORPORA = {"lee": (2, 20), "brown": (5, 5)}


def load_sentences(corpus: str, data: Path) -> list[list[str]]:
    if corpus == "lee":
        from gensim.test.utils import datapath
        from gensim.utils import simple_preprocess

        with open(datapath("lee_background.cor"), encoding="utf-8") as f:
            return [simple_preprocess(line) for line in f]
    path = data / "corpora" / "brown" / "train.txt"
    if not path.is_file():
        sys.exit(f"{path} not found: point --data (or LM_LINEAGE_DATA) at the data root")
    with open(path, encoding="utf-8") as f:
        return [line.lower().split() for line in f]


def encode(sentences: list[list[str]], min_count: int):
    """(ids, offsets, words, counts, kept sentences) with the vocabulary by descending count."""
    freq = collections.Counter(w for s in sentences for w in s)
    words = [w for w, c in sorted(freq.items(), key=lambda kv: -kv[1]) if c >= min_count]
    index = {w: i for i, w in enumerate(words)}
    kept = [[w for w in s if w in index] for s in sentences]
    ids = np.array([index[w] for s in kept for w in s], dtype=np.int64)
    offsets = np.cumsum([0] + [len(s) for s in kept]).astype(np.int64)
    counts = np.array([freq[w] for w in words], dtype=np.int64)
    return ids, offsets, words, counts, kept


def trainers(corpus, args, arch: str):
    """(ours, gensim): zero-argument callables that each train once with the shared settings."""
    from gensim.models import Word2Vec

    ids, offsets, words, counts, kept = corpus
    shared = dict(vector_size=100, window=5, negative=0 if args.hs else 5, hs=args.hs, sample=1e-3,
                  epochs=args.epochs, alpha=0.025)
    config = Word2VecConfig(arch=arch, threads=args.threads, backend=args.backend, **shared)
    shared["hs"] = int(args.hs)

    def ours():
        train_word2vec(ids, offsets, words, counts, config, seed=0)

    def gensim():
        Word2Vec(sentences=kept, sg=int(arch == "sg"), min_count=1, workers=args.threads, seed=0, **shared)

    return ours, gensim


def tokens_per_s(train, n_tokens: int, epochs: int) -> float:
    started = time.perf_counter()
    train()
    return epochs * n_tokens / (time.perf_counter() - started)


class BusyLoop:
    """One competing CPU-bound process for the duration of a with-block."""

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)  # let it get going before the timed run
        return self

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait()


def interleaved(ours, gensim, n_tokens: int, args, busy: bool) -> tuple[list[float], list[float]]:
    """tokens/s of args.runs runs each, alternating ours and gensim."""
    speeds: tuple[list[float], list[float]] = ([], [])
    for _ in range(args.runs):
        for side, train in enumerate((ours, gensim)):
            if busy:
                with BusyLoop():
                    speeds[side].append(tokens_per_s(train, n_tokens, args.epochs))
            else:
                speeds[side].append(tokens_per_s(train, n_tokens, args.epochs))
    return speeds


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="lee")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("LM_LINEAGE_DATA", "../shared/data")),
                        help="the data root holding corpora/brown (default: $LM_LINEAGE_DATA or ../shared/data)")
    parser.add_argument("--arch", default="cbow,sg", help="comma-separated: cbow, sg")
    parser.add_argument("--hs", action="store_true", help="hierarchical softmax instead of negative sampling")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side per arch (>= 3 for a range)")
    parser.add_argument("--epochs", type=int, help="default: 20 on lee, 5 on brown")
    parser.add_argument("--threads", type=int, default=Word2VecConfig().n_threads,
                        help="our threads and gensim's workers (default: the cores this process may use)")
    parser.add_argument("--backend", choices=["numba", "torch"], default="numba")
    parser.add_argument("--compete", action="store_true", help="also time both beside one busy process")
    args = parser.parse_args()
    min_count, epochs = CORPORA[args.corpus]
    args.epochs = args.epochs or epochs
    corpus = encode(load_sentences(args.corpus, args.data), min_count)
    n_tokens = len(corpus[0])
    print(f"{args.corpus}: {n_tokens:,} tokens, {len(corpus[2]):,} words; {args.epochs} epochs, "
          f"{args.threads} threads, {'hs' if args.hs else 'negative 5'}, backend {args.backend}, "
          f"{args.runs} interleaved runs each")
    for arch in args.arch.split(","):
        ours, gensim = trainers(corpus, args, arch)
        warm = argparse.Namespace(**{**vars(args), "epochs": 1})
        for train in trainers(corpus, warm, arch):  # compiled-code cache, imports, first-touch
            train()
        alone = interleaved(ours, gensim, n_tokens, args, busy=False)
        ratios = [a / b for a, b in zip(*alone)]
        print(f"{arch}: ours/gensim tokens/s {spread(ratios)} (median [min, max] of {len(ratios)} pairs); "
              f"ours {statistics.median(alone[0]):,.0f}, gensim {statistics.median(alone[1]):,.0f} tok/s")
        if args.compete:
            busy = interleaved(ours, gensim, n_tokens, args, busy=True)
            slow = [statistics.median(a) / statistics.median(b) for a, b in zip(alone, busy)]
            print(f"{arch} beside a busy process: ours {statistics.median(busy[0]):,.0f}, gensim "
                  f"{statistics.median(busy[1]):,.0f} tok/s; slowdown ours {slow[0]:.2f}x, gensim {slow[1]:.2f}x, "
                  f"ratio ours/gensim {slow[0] / slow[1]:.2f}")


if __name__ == "__main__":
    main()
