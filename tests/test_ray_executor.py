"""`--executor ray`: the cells run as Ray tasks (here on a private local Ray instance,
`--ray-address local`), and the driver writes the same files, with the same metrics as
the local executor on the same seed; an address where no cluster answers is one line,
exit code 2 and nothing written."""

import json
import socket

import pytest

from bench.cli import main

# Ours on one thread: Hogwild threads (ours with threads > 1, gensim's workers) interleave
# their updates differently from run to run; one thread gives the same vectors everywhere.
# 16 dimensions: ARPACK's SVD of Lee's PPMI takes seconds at the default 100, well under one at 16.
ARGV = ["run", "--models", "word2vec-sg,svd-ppmi", "--set", "train.epochs=1", "--set", "train.vector_size=16",
        "--no-progress", "--set", "model.word2vec-sg.threads=1"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free once the socket closes: nothing listens there


@pytest.mark.slow
def test_ray_cells_match_the_local_executor_and_resume(tmp_path, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # the embedded Lee corpus and gensim's similarity sets
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main([*ARGV, "--out", str(local), "--in-process"]) == 0  # the reference, without a worker of its own
    assert main([*ARGV, "--out", str(on_ray), "--executor", "ray", "--ray-address", "local"]) == 0
    cells = sorted(path.name for path in (local / "cells").glob("*.json"))
    assert cells == ["svd-ppmi__lee__seed0.json", "word2vec-sg__lee__seed0.json"]
    assert sorted(path.name for path in (on_ray / "cells").glob("*.json")) == cells
    for cell in cells:
        ours, theirs = (json.loads((out / "cells" / cell).read_text()) for out in (local, on_ray))
        assert theirs["status"] == "ok"
        assert theirs["device"]["torch_threads"] == 1  # Ray sized the task's threads to its 1 CPU
        assert theirs["metrics"] == ours["metrics"]
    assert (on_ray / "report.md").exists()

    stamps = {cell: (on_ray / "cells" / cell).stat().st_mtime_ns for cell in cells}
    assert main([*ARGV, "--out", str(on_ray), "--executor", "ray", "--ray-address", "local"]) == 0
    assert {cell: (on_ray / "cells" / cell).stat().st_mtime_ns for cell in cells} == stamps, "finished cells redone"


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:CLOSED", "no Ray cluster answers there"),  # the port found when the test runs: ids stay fixed
    ("ray-head", "expected HOST:PORT, ray://HOST:PORT, auto or local"),
])
def test_unreachable_or_malformed_ray_address_is_refused(tmp_path, capsys, address, expected):
    out = tmp_path / "out"
    address = address.replace("CLOSED", str(_closed_port()))
    code = main(["run", "--out", str(out), "--no-progress", "--executor", "ray", "--ray-address", address])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("lm-lineage: error: ") and expected in err
    assert not out.exists(), "a failed run must not write anything"
