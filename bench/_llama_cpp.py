"""llama.cpp as a reference for our SmolLM2 port: the Python binding built once and cached, and
an all-F32 copy of a GGUF file (cached too).

llama-cpp-python is published as source only and its build takes minutes, so `ensure_llama_cpp`
builds one pinned version once, with portable CPU flags, into
~/.cache/hartonomous/llama-cpp-python/<version>/ (a wheel and a `pip install --target` of it),
and after that only puts that folder on sys.path (seconds). The portable flags matter: the
native build's AMX path segfaults on this machine's CPU (and the binding's `use_extra_bufts`
must stay off for the same reason).

The F32 copy exists because llama.cpp quantizes activations to 8 bits inside its quantized
matmuls; on every tensor dequantized to F32 (and an F32 KV cache) it is an exact float32
forward pass that a correct port agrees with to ~1e-4.

Not a benchmark (bench/_*.py are helpers); used by tests/fixtures/llama_cpp/generate.py."""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

LLAMA_CPP_PYTHON = "0.3.36"
# A dependency of the binding that the project's environment does not have (its others,
# numpy, jinja2 and typing-extensions, come from the project's own lock).
DISKCACHE = "5.6.3"
# Portable x86-64 build: no -march=native, so no AMX kernels (they segfault on this CPU).
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hartonomous"
BINDING_ROOT = CACHE / "llama-cpp-python" / LLAMA_CPP_PYTHON
F32_ROOT = CACHE / "gguf-f32"

# Build-progress lines worth echoing: ninja's "[12/140] Building ..." and pip's own steps.
PROGRESS = re.compile(r"^\s*(\[\d+/\d+\]|Building wheel|Created wheel|Successfully|ERROR)")
TARGET = re.compile(r" -o (\S+)")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Only one process builds a cache entry; a second one waits, then finds it built."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run(cmd: list[str], log: Path, env: dict[str, str]) -> None:
    """Run `cmd`, its whole output appended to `log`, progress lines echoed to stderr."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if PROGRESS.match(line):
                # A compiler line is shown as its step and its output file only.
                target = TARGET.search(line)
                step = line.split()[0] + " " + Path(target.group(1)).name if target else line
                print(f"llama-cpp-python build: {step.strip()[:120]}", file=sys.stderr, flush=True)
        if proc.wait() != 0:
            raise RuntimeError(f"{cmd[:4]} failed (exit {proc.returncode}); see {log}")


def _build(root: Path) -> None:
    """The wheel (built from the source distribution) and a --target install of it."""
    log = root / "build.log"
    wheels = root / "wheel"
    site = root / "site"
    for stale in (wheels, site, log):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    wheels.mkdir(parents=True)
    env = {
        **os.environ,
        "CMAKE_ARGS": CMAKE_ARGS,
        "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    pip = [sys.executable, "-m", "pip"]
    print(
        f"llama-cpp-python {LLAMA_CPP_PYTHON}: building once into {root} (about 8 minutes on"
        f" 2 cores; full log in {log})",
        file=sys.stderr,
        flush=True,
    )
    started = time.monotonic()
    wheel_cmd = [*pip, "wheel", "--verbose", "--no-deps", "--no-binary", "llama-cpp-python"]
    _run(
        [*wheel_cmd, "--wheel-dir", str(wheels), f"llama-cpp-python=={LLAMA_CPP_PYTHON}"], log, env
    )
    (wheel,) = wheels.glob("llama_cpp_python-*.whl")
    _run(
        [
            *pip,
            "install",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
            f"diskcache=={DISKCACHE}",
        ],
        log,
        env,
    )
    seconds = round(time.monotonic() - started, 1)
    facts = {"version": LLAMA_CPP_PYTHON, "cmake_args": CMAKE_ARGS, "build_seconds": seconds}
    (root / "build.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(f"llama-cpp-python {LLAMA_CPP_PYTHON}: built in {seconds:.0f} s", file=sys.stderr)


def ensure_llama_cpp() -> ModuleType:
    """The `llama_cpp` module, built on the first call on this machine, imported from the
    cache after that."""
    root = BINDING_ROOT
    site = root / "site"
    if not (root / "build.json").exists():
        with _locked(root.parent / f"{LLAMA_CPP_PYTHON}.lock"):
            if not (root / "build.json").exists():
                _build(root)
    if str(site) not in sys.path:
        sys.path.insert(0, str(site))
    module = importlib.import_module("llama_cpp")
    found = getattr(module, "__version__", None)
    if found != LLAMA_CPP_PYTHON:
        raise RuntimeError(
            f"imported llama_cpp {found} from {module.__file__}, expected {LLAMA_CPP_PYTHON}"
        )
    return module


def open_model(llama_cpp: ModuleType, path: Path, **kwargs: Any) -> Any:
    """`llama_cpp.Llama(path, **kwargs)` with the model's `use_extra_bufts` off (no weight
    repacking into extra buffer types: the path that segfaults on AMX CPUs, and a different
    kernel than the plain one). The binding's constructor has no argument for it, so its
    default model parameters are wrapped while it runs."""
    low = llama_cpp.llama_cpp
    default = low.llama_model_default_params

    def params() -> Any:
        p = default()
        p.use_extra_bufts = False
        return p

    low.llama_model_default_params = params
    try:
        llm = llama_cpp.Llama(str(path), **kwargs)
    finally:
        low.llama_model_default_params = default
    if llm.model_params.use_extra_bufts:
        raise RuntimeError("use_extra_bufts is still on")
    return llm


def build_facts() -> dict[str, object]:
    """What `ensure_llama_cpp` recorded about its build (version, CMake flags, seconds)."""
    facts: dict[str, object] = json.loads((BINDING_ROOT / "build.json").read_text())
    return facts


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def f32_copy(src: Path, dest: Path) -> None:
    """Write `src` (a GGUF file) to `dest` with every tensor dequantized to F32: the same
    metadata (but general.file_type ALL_F32), the same tensor names and order. Written to a
    temporary name and renamed, so `dest` is complete or absent."""
    import gguf  # the bench extra: never a runtime dependency

    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    tmp = dest.with_name(dest.name + ".partial")
    writer = gguf.GGUFWriter(tmp, arch)
    for field in reader.fields.values():
        # The writer writes the file's version, counts, architecture and alignment itself.
        if field.name.startswith("GGUF.") or field.name in (
            gguf.Keys.General.ARCHITECTURE,
            gguf.Keys.General.ALIGNMENT,
        ):
            continue
        if field.name == gguf.Keys.General.FILE_TYPE:
            writer.add_file_type(gguf.LlamaFileType.ALL_F32)
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub_type)
    for tensor in reader.tensors:
        # GGUF lists dimensions fastest-first; numpy's order is the reverse.
        shape = tuple(int(n) for n in reversed(tensor.shape))
        nbytes = 4 * int(np.prod(shape))
        writer.add_tensor_info(
            tensor.name,
            shape,
            np.dtype(np.float32),
            nbytes,
            raw_dtype=gguf.GGMLQuantizationType.F32,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        writer.write_tensor_data(np.ascontiguousarray(values, dtype=np.float32).reshape(shape))
    writer.close()
    os.replace(tmp, dest)


def f32_model(src: Path) -> Path:
    """The all-F32 copy of `src`, written once under ~/.cache/hartonomous/gguf-f32/ (named by
    the source's SHA-256) and reused after that."""
    dest = F32_ROOT / f"{src.stem}.{sha256(src)[:16]}.f32.gguf"
    if not dest.exists():
        with _locked(F32_ROOT / f"{dest.name}.lock"):
            if not dest.exists():
                print(f"writing the all-F32 copy of {src.name} to {dest}", file=sys.stderr)
                f32_copy(src, dest)
    return dest
