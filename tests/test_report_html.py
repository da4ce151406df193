"""report.html: every figure embedded, absent inputs explained, and the page renders in a real browser."""

import base64
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors

from bench.errors import BenchError
from bench.eval.metrics import SimilaritySet, evaluate_similarity
from bench.report import probe_figures
from bench.report.render import render

# A committed cell: the synthetic results below are copies of it with a few fields changed,
# so they carry the real schema's envelope (config, dataset, device, versions, timings).
REAL_CELL = (Path(__file__).resolve().parents[1] / "results" / "standard-vectors" / "cells"
             / "word2vec-sg__offline-mix__seed0.json")
PNG_PREFIX = "data:image/png;base64,"
SECTIONS = ("Word similarity", "Perplexity", "Cost", "Quality against training cost", "Gradient flow",
            "Layer probe", "Environment")


# Two 30-pair similarity sets over 40 words; gensim-sg lacks the last 8 words, so its
# coverage (and the like-for-like pairs) differ from word2vec-sg's.
WORDS = [f"w{i}" for i in range(40)]
TOY_SETS = [SimilaritySet(name, "toy", [(WORDS[(i * step) % 40], WORDS[(i * step + 7) % 40], float(i % 11))
                                        for i in range(30)]) for name, step in (("TOY-A", 1), ("TOY-B", 3))]


def _toy_wordsim(model: str, seed: int) -> list[dict]:
    """Word-similarity rows, with their per-pair scores, of random vectors for `model` and `seed`."""
    words = WORDS[:32] if model == "gensim-sg" else WORDS
    kv = KeyedVectors(vector_size=8)
    kv.add_vectors(words, np.random.default_rng([len(model), seed]).normal(size=(len(words), 8)).astype(np.float32))
    return [evaluate_similarity(kv, sim_set) for sim_set in TOY_SETS]


def _vector_cell(model: str, seed: int) -> dict:
    cell = json.loads(REAL_CELL.read_text())
    cell["cell"].update(model=model, seed=seed)
    cell["seed"] = seed
    cell["metrics"]["wordsim"] = _toy_wordsim(model, seed)
    return cell


def _lm_cell(seed: int) -> dict:
    cell = _vector_cell("kn3", seed)
    cell["cell"].update(family="lm", corpus="brown", matrix="brown-lm")
    cell["metrics"] = {"perplexity": [
        {"split": split, "perplexity": value + seed, "scored_tokens": 1000, "vocab_size": 500, "unk_rate": 0.05,
         "sentence_ends_scored": False, "context": "2 previous tokens of the same stream"}
        for split, value in (("validation", 210.0), ("test", 200.0))]}
    cell["timings"] = {"train": cell["timings"]["train"]}
    return cell


def _on_gpu(cell: dict) -> dict:
    cell["device"].update(type="cuda", name="NVIDIA H100 80GB HBM3", cuda="12.8", driver="570.1",
                          total_mem_mb=81_000)
    for timing in cell["timings"].values():
        timing["device"] = "cuda"
    train = cell["timings"]["train"]
    train.update(tokens_per_s=train["tokens_per_s"] * 10, wall_s=train["wall_s"] / 10)
    return cell


def _write_results(folder: Path) -> Path:
    """Two matrix outputs side by side (as under results/) plus gradient_flow.csv at the top."""
    cells = [("vectors", _vector_cell(model, seed)) for model in ("word2vec-sg", "gensim-sg") for seed in (0, 1)]
    cells += [("vectors", _on_gpu(_vector_cell("word2vec-sg", 2)))]
    cells += [("lm", _lm_cell(seed)) for seed in (0, 1)]
    for matrix, cell in cells:
        name = f"{cell['cell']['model']}__{cell['cell']['corpus']}__seed{cell['seed']}.json"
        (folder / matrix / "cells").mkdir(parents=True, exist_ok=True)
        (folder / matrix / "cells" / name).write_text(json.dumps(cell))
    flow = [{"model": model, "k": k, "grad_norm": rate ** k, "seed": seed}
            for model, rate in (("rnn", 0.5), ("lstm", 0.9)) for k in range(1, 51) for seed in (0, 1)]
    pd.DataFrame(flow).to_csv(folder / "gradient_flow.csv", index=False)
    # results/ also keeps the quality-gate record, which is not a cell result.
    (folder / "quality_gates.json").write_text(json.dumps({"schema": "lm-lineage.quality-gates/1", "gates": {}}))
    return folder


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(re.escape(PNG_PREFIX) + r'([A-Za-z0-9+/=]+)"', page)]


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    folder = _write_results(tmp_path_factory.mktemp("results"))
    render(folder)
    return folder / "report.html"


# Similarity heatmaps (own coverage, like for like) for offline-mix · standard-vectors;
# perplexity for brown · brown-lm; one throughput figure (a panel each); quality against cost
# for the word vectors (the one LM, kn3, compares with nothing: no LM figure); the gradient
# flow. No cell holds POS probe rows: no probe figure.
FIGURES = 6


def test_report_html_embeds_every_figure_and_explains_what_is_missing(report_html):
    page = report_html.read_text()
    assert "Rendered from 7 result files" in page  # both matrix folders were read
    for section in SECTIONS:
        assert re.search(f'<h2 id="[^"]+">{re.escape(section)}', page), section
    images = _images(page)
    assert len(images) == page.count(PNG_PREFIX) == FIGURES
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert page.count('alt="Own coverage (each model on the pairs it covers): Spearman ρ per model and set, corpus '
                      'offline-mix · standard-vectors"') == 1
    assert "Like for like (the pairs every model here covers)" in page
    explanation = "No POS probe rows in this folder: run a matrix with a <code>[probe]</code> section"
    assert explanation in page
    assert "No POS probe rows in this folder" in (report_html.parent / "report.md").read_text()
    assert "GPU NVIDIA H100 80GB HBM3 (79 GiB, CUDA 12.8, driver 570.1)" in page
    assert "<th>k=50</th>" in page


def test_cells_pos_probe_rows_add_their_figure_and_table(tmp_path):
    folder = _write_results(tmp_path / "results")
    for seed in (0, 1):
        cell = _vector_cell("elmo", seed)
        cell["metrics"]["pos_probe"] = [{"model": "elmo", "probe_corpus": "brown-pos", "layer": str(layer),
                                         "accuracy": 0.9 + 0.01 * layer, "train_tokens": 800, "eval_tokens": 200}
                                        for layer in (0, 1, 2)]
        (folder / "vectors" / "cells" / f"elmo__offline-mix__seed{seed}.json").write_text(json.dumps(cell))
    render(folder, tmp_path / "out")
    page = (tmp_path / "out" / "report.html").read_text()
    assert len(_images(page)) == FIGURES + 1
    assert "No POS probe rows" not in page
    assert "<th>layer 2</th>" in page and "<td>92.0 ± 0.0</td>" in page
    assert len(pd.read_csv(tmp_path / "out" / "pos_probe.csv")) == 6


def test_diagnostic_csv_without_its_columns_is_refused_in_one_line(tmp_path):
    folder = _write_results(tmp_path / "results")
    pd.DataFrame([{"model": "rnn", "layer": 0}]).to_csv(folder / "gradient_flow.csv", index=False)
    with pytest.raises(BenchError, match=r"gradient_flow.csv: missing column\(s\) k, grad_norm, seed") as error:
        render(folder)
    assert "\n" not in str(error.value)
    assert not (folder / "report.html").exists()


# Smallest width and height (pixels) a figure must have once the browser decoded it: a
# broken or empty plot would be a few pixels; the smallest one drawn (a one-row bar chart)
# is 800 x 192.
MIN_FIGURE_PX = (300, 150)


def test_report_html_renders_with_its_images_in_headless_chromium(report_html, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        # .ci/run installs chromium and sets CI: there the check must run, never skip.
        assert not os.environ.get("CI"), "CI is set but there is no chromium on PATH: .ci/run installs it"
        pytest.skip("no chromium on PATH: install it with `apt-get install chromium` (Debian)")
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=5000", "--dump-dom", report_html.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = re.search(r'data-images-loaded="(\d+)"', done.stdout)
    total = re.search(r'data-images-total="(\d+)"', done.stdout)
    assert loaded and total, "the page's load script did not run: " + done.stdout[:500]
    assert int(loaded.group(1)) == int(total.group(1)) == FIGURES
    smallest = [int(re.search(rf'data-images-min-{side}="(\d+)"', done.stdout).group(1))
                for side in ("width", "height")]
    assert smallest[0] >= MIN_FIGURE_PX[0] and smallest[1] >= MIN_FIGURE_PX[1], smallest


def test_two_matrices_with_the_same_cells_are_reported_apart(tmp_path):
    # brown-lm and brown-lm-sentences both run kn3 on brown at seed 0, on different tokens:
    # a combined report must not average them into one row.
    for matrix, offset in (("brown-lm", 0.0), ("brown-lm-sentences", -50.0)):
        cell = _lm_cell(0)
        cell["cell"]["matrix"] = matrix
        for row in cell["metrics"]["perplexity"]:
            row["perplexity"] += offset
        (tmp_path / matrix / "cells").mkdir(parents=True)
        (tmp_path / matrix / "cells" / "kn3__brown__seed0.json").write_text(json.dumps(cell))
    report = render(tmp_path).read_text()
    assert "### corpus `brown · brown-lm`" in report and "### corpus `brown · brown-lm-sentences`" in report
    assert "| kn3 | 1 | 210.0 | 200.0 |" in report and "| kn3 | 1 | 160.0 | 150.0 |" in report
    table = pd.read_csv(tmp_path / "perplexity.csv")
    assert sorted(table[table["split"] == "test"]["matrix"]) == ["brown-lm", "brown-lm-sentences"]


def _embedding_cell(model: str, seed: int, settings: dict, men: float, ws: float, matrix: str) -> dict:
    cell = _vector_cell(model, seed)
    cell["cell"]["matrix"] = matrix
    cell["config"]["model"] = settings
    cell["metrics"]["wordsim"] = [{"benchmark": bench, "pairs": 100, "oov_pairs": 0, "spearman": value,
                                   "pearson": value} for bench, value in (("MEN-TR-3k", men), ("WS-353-ALL", ws))]
    return cell


def test_glove_settings_are_compared_with_skipgram_at_the_same_window(tmp_path):
    glove = {"vector_size": 100, "window": 10, "x_max": 100.0, "alpha": 0.75, "epochs": 25, "learning_rate": 0.05}
    sg = {"sg": True, "vector_size": 100, "window": 10}
    cells = [("glove-parity", _embedding_cell("glove", 0, glove, 0.20, 0.30, "glove-parity")),
             ("glove-parity", _embedding_cell("glove", 1, glove, 0.30, 0.30, "glove-parity")),
             ("glove-parity", _embedding_cell("gensim-sg", 0, sg, 0.40, 0.32, "glove-parity")),
             ("sweep", _embedding_cell("glove", 0, {**glove, "x_max": 10.0}, 0.38, 0.31, "sweep")),
             # Another window: no glove row of its own, and not the reference for window 10.
             ("other", _embedding_cell("gensim-sg", 0, {**sg, "window": 5}, 0.90, 0.90, "other"))]
    for folder, cell in cells:
        name = f"{cell['cell']['model']}__{cell['cell']['corpus']}__seed{cell['seed']}.json"
        (tmp_path / folder / "cells").mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "cells" / name).write_text(json.dumps(cell))
    report = render(tmp_path).read_text()
    section = report.split("## GloVe settings against skip-gram")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| offline-mix")]
    # x_max 10 sorts before 100; the x_max 100 row pools its two seeds: MEN (0.20 + 0.30) / 2.
    assert rows == [
        "| offline-mix | 100 | 10 | 10 | 0.75 | 25 | 0.05 | 1 | 0.380 | 0.400 | -0.020 | 0.310 | 0.320 | -0.010 | yes "
        "| 1 | sweep |",
        "| offline-mix | 100 | 10 | 100 | 0.75 | 25 | 0.05 | 2 | 0.250 | 0.400 | -0.150 | 0.300 | 0.320 | -0.020 | no "
        "| 1 | glove-parity |",
    ]


def _elmo_cell(matrix: str, seed: int, tokens: float, pos: dict, wsd: dict, samples: int | None = None,
               lowercase: bool = False) -> dict:
    """A biLM cell of `matrix` that read `tokens` in training: POS accuracy per layer, and WSD
    accuracy (micro-averaged, both methods) per layer; samples: its training softmax's, None for
    a cell from before the sampled softmax (no such key); lowercase: its tokenizer's."""
    cell = _vector_cell("elmo", seed)
    cell["cell"].update(family="bilm", corpus="brown", matrix=matrix)
    cell["config"]["model"] = {"projection_dim": 128, "hidden": 512}
    cell["config"]["tokenizer"]["lowercase"] = lowercase
    if samples is not None:
        cell["config"]["model"].update(projection_dim=256, softmax_samples=samples)
    timing = {"device": "cpu", "wall_s": 100.0, "tokens": tokens, "tokens_per_s": tokens / 100.0,
              "peak_rss_mb": 1000.0, "peak_cuda_mb": None}
    cell["timings"] = {"train": timing}
    cell["metrics"] = {
        "pos_probe": [{"model": "elmo", "probe_corpus": "brown-pos", "layer": layer, "accuracy": accuracy,
                       "train_tokens": 1000, "eval_tokens": 400} for layer, accuracy in pos.items()],
        "wsd_probe": [{"model": "elmo", "probe_corpus": "senseval2", "layer": layer, "word": "all",
                       "method": method, "accuracy": accuracy, "instances": 100, "train_instances": 400,
                       "eval_instances": 100} for layer, accuracy in wsd.items() for method in ("linear", "centroid")]}
    return cell


def test_elmo_layer_claims_are_stated_with_seeds_and_probes_drawn_against_training_tokens(tmp_path):
    # elmo-seeds: 2 seeds that read 1M tokens, layer 1 ahead on POS in both and layer 2 on WSD in
    # one of two; elmo: one seed that read 4M tokens.
    runs = [("elmo-seeds", 0, 1e6, {"0": 0.80, "1": 0.92, "2": 0.90, "mix": 0.93}, {"0": 0.6, "1": 0.70, "2": 0.74}),
            ("elmo-seeds", 1, 1e6, {"0": 0.80, "1": 0.94, "2": 0.91, "mix": 0.94}, {"0": 0.6, "1": 0.72, "2": 0.70}),
            ("elmo", 0, 4e6, {"0": 0.85, "1": 0.95, "2": 0.96, "mix": 0.96}, {"0": 0.6, "1": 0.75, "2": 0.78})]
    for matrix, seed, tokens, pos, wsd in runs:
        folder = tmp_path / matrix / "cells"
        folder.mkdir(parents=True, exist_ok=True)
        cell = _elmo_cell(matrix, seed, tokens, pos, wsd, samples=2048 if matrix == "elmo" else None,
                          lowercase=matrix == "elmo")
        (folder / f"elmo__brown__seed{seed}.json").write_text(json.dumps(cell))
    report = render(tmp_path).read_text()
    assert ("POS, `elmo` on `brown-pos · elmo-seeds`: layer 1 scores higher, 93.0 ± 1.4% (layer 1) against "
            "90.5 ± 0.7% (layer 2), higher in 2 of 2 seed(s); Peters et al. 2018 found layer 1") in report
    assert ("WSD (linear, micro-averaged), `elmo` on `senseval2 · elmo-seeds`: layer 2 scores higher, 71.0 ± 1.4% "
            "(layer 1) against 72.0 ± 2.8% (layer 2), higher in 1 of 2 seed(s)") in report
    assert "POS, `elmo` on `brown-pos · elmo`: layer 2 scores higher, 95.0% (layer 1) against 96.0%" in report
    section = report[report.index("## ELMo's probes against the text its biLM read"):]
    assert ("| elmo | elmo-seeds | 256-d layers, 512 cells, full softmax | 2 | 1.00 ± 0.00 | 93.0 ± 1.4 | 90.5 ± 0.7 "
            "| 71.0 ± 1.4 | 72.0 ± 2.8 |") in section
    assert ("| elmo | elmo | 512-d layers, 512 cells, 2,048-sample softmax, lower-cased text | 1 | 4.00 | 95.0 "
            "| 96.0 | 75.0 | 78.0 |") in section
    assert f'alt="{html.escape(probe_figures.PROBES_AGAINST_TOKENS_TITLE)}"' in (tmp_path / "report.html").read_text()
