"""`lm-lineage data build`: the data root (corpora, similarity sets) built from public sources
and checked against its sha256 manifest (`bench.data.build`)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.commands.flags import split_names
from bench.errors import BenchError
from bench.run import outdir


def data_build_command(args) -> int:
    from bench.data.build import NLTK_INDEX, WORDSIM_URL, build_data_root
    from bench.data.datasets import DATA_ENV

    for local, remote in (("nltk_archives", "nltk_index"), ("wordsim_dir", "base_url")):
        if getattr(args, local) is not None and getattr(args, remote) is not None:
            raise BenchError(f"--{local.replace('_', '-')} and --{remote.replace('_', '-')}: expected one source, "
                             f"local copies or a URL, not both")
    out = outdir.as_path(args.out or os.environ.get(DATA_ENV) or str(Path.home() / "lm-lineage-data"), "--out")
    outdir.check_writable(out, "--out")
    built = build_data_root(out, split_names(args.only, "--only"),
                            nltk_archives=None if args.nltk_archives is None else Path(args.nltk_archives),
                            wordsim_dir=None if args.wordsim_dir is None else Path(args.wordsim_dir),
                            nltk_index=args.nltk_index or NLTK_INDEX, wordsim_url=args.base_url or WORDSIM_URL)
    print(f"data root {out}: {len(built)} folder(s) built, every file verified; use it with --data-dir {out} "
          f"or {DATA_ENV}={out}")
    return 0
