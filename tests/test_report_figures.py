"""The report's figures read: distinct titles that name corpus and matrix, legends inside the
image, no overprinted labels, pretrained LMs apart, and a table of contents whose links land."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bench.report import figures, probe_figures, sections
from bench.report.markup import contents, to_html
from bench.report.render import render
from tests.test_report_html import _vector_cell, _write_results


@pytest.mark.filterwarnings("ignore:Tight layout not applied")  # the 40 entries leave it no room: the point
def test_a_legend_past_the_image_edge_or_overprinted_labels_are_refused():
    figure = Figure(figsize=(3, 2))
    axes = figure.add_subplot()
    for i in range(40):  # far more entries than a 2-inch figure holds
        axes.plot([0, 1], [i, i], label=f"series {i}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    with pytest.raises(RuntimeError, match="a legend reaches past the image's edge"):
        figures._png(figure)
    figure = Figure(figsize=(3, 2))
    axes = figure.add_subplot()
    axes.set_title("crowded")
    axes.text(0.5, 0.5, "one label")
    axes.text(0.52, 0.5, "another label")
    with pytest.raises(RuntimeError, match="labels 'one label' and 'another label' overlap in panel 'crowded'"):
        figures._png(figure)


def _probe_rows(model: str, layers: list[str], task: str = "POS (linear)") -> list[dict]:
    return [{"model": model, "task": task, "layer": layer, "accuracy": 0.8 + 0.1 * np.sin(i), "seed": seed,
             "corpus": "brown-pos"} for i, layer in enumerate(layers) for seed in (0, 1)]


def test_the_pos_probe_of_a_30_layer_model_draws_its_layers_in_order_without_overprinting():
    # A 31-layer transformer and a 7-layer one with "static" first and "mix" after layer 6: the
    # layers as first seen, the order that wrote "static0 1 2 3 4 5 6mix7 8 9 1011..." on the axis.
    frame = pd.DataFrame([*_probe_rows("minilm", ["static", *map(str, range(7)), "mix"]),
                          *_probe_rows("smollm2-135m", [*map(str, range(31)), "mix"]),
                          *_probe_rows("most-frequent-tag", ["per-word"])])
    assert probe_figures.layer_probe(frame, "POS probe, corpus brown-pos").startswith(b"\x89PNG")  # _png checked it
    curve = pd.Series([0.5, 0.7, 0.6, 0.9], index=["static", "10", "2", "mix"])
    figure = Figure()
    axes = figure.add_subplot()
    probe_figures._layer_curve(axes, curve, "black")
    assert list(axes.lines[0].get_xdata()) == [2, 10]  # numbered layers in numeric order, on one line
    labels = [label.get_text() for label in axes.get_xticklabels()]
    assert labels[-2:] == ["static", "mix"] and "10" in labels


def test_probes_against_depth_get_a_panel_per_task_and_a_legend_entry_per_family():
    tasks = ("POS (linear)", "WSD (linear)", "WSD (centroid)")
    rows = [row for task in tasks for matrix in range(8)
            for row in _probe_rows(f"elmo (matrix-{matrix})", ["0", "1", "2", "mix"], task)]
    rows += [row for task in tasks for row in _probe_rows("smollm2-135m", list(map(str, range(31))), task)]
    png = probe_figures.probe_depth(pd.DataFrame(rows), "Probe accuracy against relative depth")
    assert png.startswith(b"\x89PNG")
    width, height = (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))  # the IHDR chunk
    assert width <= figures.MAX_WIDTH_IN * figures.DPI and height < 500


def test_a_pretrained_lm_is_apart_in_the_perplexity_bars_and_has_no_quality_against_cost_point():
    perplexity = pd.DataFrame([{"model": model, "corpus": "brown", "seed": 0, "split": split, "perplexity": value,
                                "unk_rate": 0.0 if model == "smollm2-135m" else 0.05}
                               for model, value in (("kn5", 200.0), ("lstm", 130.0), ("smollm2-135m", 70.0))
                               for split in ("validation", "test")])
    throughput = pd.DataFrame([{"model": model, "corpus": "brown", "seed": 0, "device": "cpu", "phase": "train",
                                "tokens_per_s": speed, "wall_s": wall}
                               for model, speed, wall in (("kn5", 1e6, 0.5), ("lstm", 2e3, 900.0),
                                                          ("smollm2-135m", None, 17.0))])
    apart = sections._pretrained(perplexity, throughput)
    assert apart == {"smollm2-135m": "pretrained, open vocabulary, not trained here"}
    assert figures.perplexity(perplexity, "Test perplexity, corpus brown", apart).startswith(b"\x89PNG")
    table = figures.quality_and_cost(pd.DataFrame(columns=["model", "corpus", "spearman"]), perplexity, throughput)
    assert table.loc[("smollm2-135m", "brown", "cpu"), "wall_s"] == 17.0  # the table keeps its row
    measure, title = figures.PERPLEXITY_AGAINST_TIME, "Perplexity against training time"
    assert figures.quality_vs_cost(table, measure, title).startswith(b"\x89PNG")  # kn5 and lstm
    # Without lstm the panel would hold kn5 and the pretrained model: one point to draw, so no figure.
    assert figures.quality_vs_cost(table.drop(index="lstm", level="model"), measure, title) is None


def test_contents_links_every_section_by_its_short_name():
    blocks = ["## Perplexity (per word, lower is better)", "text", "### corpus `brown`",
              "## Ours against gensim at matched settings (corpus `lee`)", "## Gradient flow: |d loss_t| in LMs"]
    assert contents(blocks) == ["## Contents", "", "- [Perplexity](#perplexity-per-word-lower-is-better)",
                                "- [Ours against gensim at matched settings, `lee`]"
                                "(#ours-against-gensim-at-matched-settings-corpus-lee)",
                                "- [Gradient flow](#gradient-flow-d-loss_t-in-lms)", ""]
    page = to_html(contents(blocks) + blocks)
    assert '<a href="#perplexity-per-word-lower-is-better">Perplexity</a>' in page
    assert '<h2 id="perplexity-per-word-lower-is-better">' in page


# Appended to a copy of report.html: once laid out, the page records every figure's title (its
# alt text), whether any image is clipped or scaled down, and the in-page links with no target.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => {
  const width = document.documentElement.clientWidth;
  const images = Array.from(document.images);
  document.body.dataset.titles = JSON.stringify(images.map((image) => image.alt));
  document.body.dataset.squeezed = JSON.stringify(images.filter((image) => {
    const box = image.getBoundingClientRect();
    return box.left < 0 || box.right > width || Math.round(box.width) < image.naturalWidth;
  }).map((image) => image.alt));
  const links = Array.from(document.querySelectorAll('a[href^="#"]'));
  document.body.dataset.links = links.length;
  document.body.dataset.dangling = JSON.stringify(links.map((link) => decodeURIComponent(link.hash.slice(1)))
    .filter((id) => !document.getElementById(id)));
});
</script>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium on PATH (CI installs it)")
def test_in_chromium_figure_titles_are_distinct_images_unclipped_and_contents_links_land(tmp_path):
    folder = _write_results(tmp_path / "results")
    for seed in (0, 1):  # a probed transformer: the figure of many layers
        cell = _vector_cell("smollm2-135m", seed)
        cell["metrics"]["pos_probe"] = [{"model": "smollm2-135m", "probe_corpus": "brown-pos", "layer": layer,
                                         "accuracy": 0.8 + 0.001 * i, "train_tokens": 800, "eval_tokens": 200}
                                        for i, layer in enumerate([*map(str, range(31)), "mix"])]
        (folder / "vectors" / "cells" / f"smollm2-135m__offline-mix__seed{seed}.json").write_text(json.dumps(cell))
    render(folder)
    probed = tmp_path / "probed.html"
    probed.write_text((folder / "report.html").read_text().replace("</body>", LAYOUT_PROBE + "</body>"))
    command = [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
               "--window-size=1280,800", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    found = {name: re.search(rf"data-{name}=\"([^\"]*)\"", done.stdout) for name in ("titles", "squeezed", "links",
                                                                                      "dangling")}
    assert all(found.values()), "the probe did not run: " + done.stdout[:500]
    titles = json.loads(found["titles"].group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(titles) >= 7 and all(titles)
    assert len(set(titles)) == len(titles), [title for title in titles if titles.count(title) > 1]
    assert "POS probe accuracy per layer and model, corpus brown-pos · standard-vectors" in titles
    assert found["squeezed"].group(1) == "[]"
    assert int(found["links"].group(1)) >= 7  # the contents, besides the ledger's links
    assert found["dangling"].group(1) == "[]"


def test_the_pos_probe_figure_grows_to_hold_the_legend_of_many_models_probed_once():
    frame = pd.DataFrame([*_probe_rows("elmo", ["0", "1", "2", "mix"]),
                          *[row for i in range(30) for row in _probe_rows(f"static-model-{i}", ["static"])]])
    assert probe_figures.layer_probe(frame, "POS probe, corpus brown-pos").startswith(b"\x89PNG")  # _png: legend inside


def test_every_figure_the_claims_ledger_names_is_in_the_committed_report():
    from bench.report.claims import CLAIMS

    page = (Path(__file__).resolve().parents[1] / "results" / "report.html").read_text()
    titles = [html.unescape(alt).lower() for alt in re.findall(r'<img src="data:image/png;base64,[^"]*" alt="([^"]*)"',
                                                                page)]
    named = {check.figure for claim in CLAIMS for check in claim.checks if check.figure}
    assert named and all(any(figure.lower() in title for title in titles) for figure in named), \
        [figure for figure in named if not any(figure.lower() in title for title in titles)]
