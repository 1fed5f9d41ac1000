"""The AWS Lambda deployment zip of the scoring API: the ``[api]`` serving path, the C kernel and a model bundle.

Layout of the zip (what Lambda unpacks into ``/var/task``, which is on ``sys.path``)::

    lambda_function.py        the handler, lambda_function.lambda_handler (a shim, see LAMBDA_SHIM)
    bundle/                   the model bundle (--model), FRAUDSTREAM_MODEL's default
    fraudstream/model/        the pure core, with _forest.cpython-3XX-x86_64-linux-gnu.so when it can be built
    fraudstream/services/     settings, stores, the API
    numpy/ pydantic/ ...      the third-party wheels for Lambda's Linux (manylinux, x86_64)

Dependencies are the project's own pins, read from its installed metadata: the base install plus the
``[api]`` extra, less what the managed runtime provides (its runtime interface client) and what only
``fraudstream serve`` needs (uvicorn), plus opensearch-py when alerts go to OpenSearch. They are
installed by pip for the target runtime (``--platform`` tags up to its glibc, ``--only-binary=:all:``)
and cached by requirement set, so a second build copies instead of downloading.

Lambda's ``python3.11`` runtime runs on Amazon Linux 2 (glibc 2.26) and ``python3.12`` on Amazon
Linux 2023 (glibc 2.34); numpy 2.4 publishes manylinux_2_27 wheels only, so 3.12 is the default and
a 3.11 build stops with pip's answer and that explanation.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fraudstream.model.errors import InputError, ServiceError

ZIPPED_LIMIT = 50 * 1024 * 1024  # Lambda's limit for a zip uploaded directly
UNZIPPED_LIMIT = 250 * 1024 * 1024  # Lambda's limit for the unpacked function and its layers
HANDLER = "lambda_function.lambda_handler"
TASK_ROOT = "/var/task"  # where Lambda unpacks the zip
BUNDLE_DIR = "bundle"
PROJECT_PACKAGES = ("model", "services")  # fraudstream.<name> shipped; the dashboard and operator are not
EXTRA = "api"
# Provided by Lambda's managed Python runtime, or used only by `fraudstream serve` (uvicorn and its C parts).
NOT_SHIPPED = frozenset({"awslambdaric", "uvicorn", "httptools", "uvloop"})
# Never on the serving path: finding one in the zip means a dependency dragged it in.
FORBIDDEN = ("sklearn", "scipy", "pandas", "kafka", "elasticsearch", "streamlit", "pyarrow")
# Installed as dependencies but never imported on the serving path: opensearch-py requires its gRPC
# transport's protobufs (grpcio and protobuf, ~20 MB), while the alert store uses its REST client only.
# Removing them keeps the zip well under 50 MB; the emulator test imports the OpenSearch store without them.
PRUNED = ("bin", "grpc", "grpcio-*.dist-info", "google/protobuf", "protobuf-*.dist-info", "opensearch/protobufs",
          "opensearch_protobufs-*.dist-info")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same inputs give the same zip

LAMBDA_SHIM = '''\
"""AWS Lambda entry point (handler: lambda_function.lambda_handler), written by `fraudstream package-lambda`.

Built at import, which is the container's init: the model bundle packaged beside this file is the model
unless FRAUDSTREAM_MODEL names another.
"""

from pathlib import Path

from fraudstream.services.api.lambda_function import build_handler

lambda_handler = build_handler(bundle=Path(__file__).resolve().with_name("bundle"))
'''


class PackagingError(InputError):
    """The Lambda package cannot be built as asked (an unknown runtime, a dependency with no wheel, too large)."""


class PackageTooLarge(PackagingError):
    """The zip would exceed Lambda's size limits; nothing is written."""


@dataclass(frozen=True)
class Runtime:
    """A Lambda managed Python runtime on x86_64: its Python version and the glibc of its Amazon Linux."""

    python: str
    os_name: str
    glibc: tuple[int, int]

    @property
    def identifier(self) -> str:
        return f"python{self.python}"

    @property
    def platforms(self) -> list[str]:
        """pip ``--platform`` tags whose wheels load on this runtime: manylinux2014 up to its glibc."""
        newer = [f"manylinux_2_{minor}_x86_64" for minor in range(17, self.glibc[1] + 1)]
        return ["manylinux2014_x86_64", *newer]

    @property
    def ext_suffix(self) -> str:
        return f".cpython-{self.python.replace('.', '')}-x86_64-linux-gnu.so"


RUNTIMES = {
    "3.11": Runtime("3.11", "Amazon Linux 2", (2, 26)),
    "3.12": Runtime("3.12", "Amazon Linux 2023", (2, 34)),
}
DEFAULT_PYTHON = "3.12"


@dataclass
class PackageReport:
    """What was built: the zip, its sizes against Lambda's limits, and how the scorer will run."""

    path: Path
    runtime: Runtime
    zipped_bytes: int
    unzipped_bytes: int
    kernel: str  # how the C kernel got in, or why the numpy backend will score
    bytecode: bool  # modules precompiled for the target Python (faster cold start)
    requirements: list[str] = field(default_factory=list)
    largest: list[tuple[str, int]] = field(default_factory=list)  # top-level entries by unpacked size


Step = Callable[[str], None]


def serving_requirements(with_opensearch: bool = True) -> list[str]:
    """The pinned requirements of the serving path, from the installed project's metadata."""
    try:
        declared = importlib.metadata.requires("fraudstream") or []
    except importlib.metadata.PackageNotFoundError as error:
        raise PackagingError("fraudstream is not installed (run scripts/install), so its pins are unknown") from error
    chosen = []
    for line in declared:
        spec, _, marker = (part.strip() for part in line.partition(";"))
        extra = re.search(r'extra\s*==\s*"([^"]+)"', marker)
        name = re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0].lower()
        wanted = (
            extra is None
            or extra.group(1) == EXTRA
            or (with_opensearch and extra.group(1) == "search" and name == "opensearch-py")
        )
        if wanted and name not in NOT_SHIPPED:
            chosen.append(spec)
    return chosen


def install_dependencies(requirements: list[str], runtime: Runtime, cache: Path) -> Path:
    """A folder holding ``requirements`` installed for ``runtime`` (cached by requirement set; pip only on a miss)."""
    key = hashlib.sha256(json.dumps([sorted(requirements), runtime.python, runtime.platforms]).encode()).hexdigest()
    done = cache / "lambda" / f"site-{runtime.python}-{key[:16]}"
    if (done / ".complete").exists():
        return done
    done.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="site.tmp.", dir=done.parent))
    command = [
        sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-compile",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", runtime.python,
        *(arg for platform in runtime.platforms for arg in ("--platform", platform)),
        "--target", str(staging), "--cache-dir", str(cache / "pip"), *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        lines = (re.sub(r" \(from versions:[^)]*\)", "", line.strip()) for line in result.stderr.splitlines()[-4:])
        tail = " | ".join(line for line in lines if line)
        hint = (f" (Lambda's {runtime.identifier} runs on {runtime.os_name}, glibc "
                f"{runtime.glibc[0]}.{runtime.glibc[1]}: a dependency with no wheel for it needs another "
                "--python-version)") if "matching distribution" in result.stderr else ""
        error = ServiceError if "connection" in result.stderr.lower() else PackagingError
        raise error(f"pip could not install the serving dependencies for {runtime.identifier}: {tail}{hint}")
    (staging / ".complete").write_text("\n".join(requirements) + "\n")
    try:
        staging.rename(done)
    except OSError:  # another build finished the same set first
        shutil.rmtree(staging, ignore_errors=True)
    return done


def find_python(version: str) -> Path | None:
    """An interpreter of ``version`` on this machine (``pythonX.Y`` on PATH, else pyenv's), or None."""
    candidates: list[Path] = []
    if found := shutil.which(f"python{version}"):
        candidates.append(Path(found))
    candidates += sorted((Path.home() / ".pyenv").glob(f"versions/{version}.*/bin/python{version}"), reverse=True)
    return next((candidate for candidate in candidates if python_version(candidate) == version), None)


def python_version(interpreter: Path) -> str | None:
    """``X.Y`` of ``interpreter``, or None when it does not run (a pyenv shim without that version, say)."""
    try:
        ran = subprocess.run([str(interpreter), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except OSError:
        return None
    return ran.stdout.strip() if ran.returncode == 0 else None


def glibc_needed(library: Path) -> tuple[int, int]:
    """The newest glibc symbol version a shared library asks for (from its version strings)."""
    versions = [(int(a), int(b)) for a, b in re.findall(rb"GLIBC_(\d+)\.(\d+)", library.read_bytes())]
    return max(versions, default=(2, 0))


def place_kernel(detectors: Path, runtime: Runtime, python: Path | None, staging: Path) -> str:
    """Put the C kernel built for ``runtime`` into ``staging``'s detectors folder; say how, or why not."""
    name = "_forest" + runtime.ext_suffix
    built = detectors / name
    source = detectors / "_forest.c"
    target = staging / "fraudstream" / "model" / "detectors" / name
    if built.exists():
        shutil.copy2(built, target)
        how = "C kernel (this install's build)"
    elif source.exists() and python is not None:
        include = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
                                 capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL).stdout.strip()
        compiled = subprocess.run(["cc", "-O3", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if compiled.returncode != 0:
            return f"numpy backend: compiling the C kernel for Python {runtime.python} failed: {compiled.stderr.strip()[-300:]}"
        how = f"C kernel (compiled for Python {runtime.python} with {python})"
    else:
        return (f"numpy backend (same scores, slower): no C kernel for Python {runtime.python}; "
                f"give --build-python with a Python {runtime.python} from a source checkout to include it")
    needed = glibc_needed(target)
    if needed > runtime.glibc:
        target.unlink()
        return (f"numpy backend (same scores, slower): the C kernel needs glibc {needed[0]}.{needed[1]}, newer than "
                f"{runtime.os_name}'s {runtime.glibc[0]}.{runtime.glibc[1]}")
    return how


def copy_project(staging: Path) -> Path:
    """Copy fraudstream's shipped packages (sources only) into ``staging``; return the installed detectors folder."""
    import fraudstream.model.detectors as detectors

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.c", "*.o")
    for name in PROJECT_PACKAGES:
        package = importlib.import_module(f"fraudstream.{name}")
        shutil.copytree(Path(package.__file__).parent, staging / "fraudstream" / name, ignore=ignore)
    return Path(detectors.__file__).parent


def copy_bundle(model: Path, staging: Path) -> None:
    """Check that ``model`` is a bundle that loads, then copy its files to ``bundle/``."""
    from fraudstream.model.bundle import load_bundle

    load_bundle(model)  # a damaged or missing bundle stops here with its own message, not on Lambda
    shutil.copytree(model, staging / BUNDLE_DIR, ignore=shutil.ignore_patterns("__pycache__", ".*"))


def precompile(staging: Path, python: Path) -> bool:
    """Compile every module with the target interpreter: /var/task is read-only, so Lambda could not cache them.

    Hash-based (zip timestamps would not match the sources) and named as they will be on Lambda (reproducible)."""
    done = subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                           "-s", str(staging), "-p", TASK_ROOT, str(staging)], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return done.returncode == 0


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def write_zip(staging: Path, out: Path) -> int:
    """Zip ``staging`` reproducibly (sorted names, fixed times, world-readable modes) to ``out``; return its size."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(staging).as_posix(), date_time=ZIP_TIME)
            info.external_attr = (0o100755 if path.suffix == ".so" else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as handle:
                archive.writestr(info, handle.read(), compresslevel=9)
    return out.stat().st_size


def largest_entries(staging: Path, count: int = 6) -> list[tuple[str, int]]:
    """The top-level folders (and fraudstream's packages) that take the most unpacked space."""
    entries = [p for p in staging.iterdir() if p.name != "fraudstream"] + list((staging / "fraudstream").iterdir())
    sizes = [(p.relative_to(staging).as_posix(), tree_size(p) if p.is_dir() else p.stat().st_size) for p in entries]
    return sorted(sizes, key=lambda item: -item[1])[:count]


def prune(staging: Path) -> None:
    """Remove the installed files the serving path never imports (:data:`PRUNED`), and folders left empty."""
    for pattern in PRUNED:
        for path in staging.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for parent in ("google", "opensearch"):
        folder = staging / parent
        if folder.is_dir() and not any(p for p in folder.iterdir() if p.name != "__init__.py"):
            shutil.rmtree(folder)


def check_serving_path(staging: Path) -> None:
    """Refuse a package that carries a training, streaming or dashboard library."""
    found = [name for name in FORBIDDEN if (staging / name).exists()]
    if found:
        raise PackagingError(f"the serving dependencies pulled in {', '.join(found)}, which Lambda must not carry")


def check_limits(zipped: int, unzipped: int) -> None:
    """Raise :class:`PackageTooLarge` naming the limit a package exceeds."""
    over = []
    if zipped > ZIPPED_LIMIT:
        over.append(f"zipped {mib(zipped)} > {mib(ZIPPED_LIMIT)} (direct upload)")
    if unzipped > UNZIPPED_LIMIT:
        over.append(f"unzipped {mib(unzipped)} > {mib(UNZIPPED_LIMIT)}")
    if over:
        raise PackageTooLarge("the Lambda package is over Lambda's limits: " + "; ".join(over))


def mib(size: int) -> str:
    """``size`` in MiB, as Lambda's limits are given."""
    return f"{size / 1024 / 1024:.1f} MB"


def build(
    model: Path, out: Path, *, python: str = DEFAULT_PYTHON, with_opensearch: bool = True,
    build_python: Path | None = None, cache: Path, step: Step = lambda _: None,
) -> PackageReport:
    """Build the Lambda zip of the scoring API with ``model`` at ``out``; ``step`` hears each stage's name.
    ``cache`` keeps pip's downloads and the installed dependency sets between builds.

    Nothing is written at ``out`` unless the package is within Lambda's limits.
    """
    runtime = RUNTIMES.get(python)
    if runtime is None:
        raise PackagingError(f"--python-version must be one of {', '.join(RUNTIMES)} (Lambda's x86_64 runtimes), "
                             f"got {python}")
    if build_python is not None and python_version(build_python) != python:
        raise PackagingError(f"--build-python {build_python} is not a Python {python} that runs "
                             f"(it says {python_version(build_python) or 'nothing'})")
    interpreter = build_python or (Path(sys.executable) if f"{sys.version_info[0]}.{sys.version_info[1]}" == python
                                   else find_python(python))
    requirements = serving_requirements(with_opensearch)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".lambda-build.", dir=out.parent) as tmp:
        staging = Path(tmp) / "package"
        step("checking the model bundle")
        staging.mkdir()
        copy_bundle(model, staging)
        step(f"installing {len(requirements)} serving dependencies for {runtime.identifier} (cached after the first build)")
        site = install_dependencies(requirements, runtime, cache)
        shutil.copytree(site, staging, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".complete"))
        prune(staging)
        check_serving_path(staging)
        step("copying fraudstream and its C kernel")
        detectors = copy_project(staging)
        kernel = place_kernel(detectors, runtime, interpreter, staging)
        (staging / "lambda_function.py").write_text(LAMBDA_SHIM)
        bytecode = False
        if interpreter is not None:
            step(f"precompiling modules for Python {python}")
            bytecode = precompile(staging, interpreter)
        step("zipping")
        unzipped = tree_size(staging)
        partial = Path(tmp) / "function.zip"
        zipped = write_zip(staging, partial)
        check_limits(zipped, unzipped)
        largest = largest_entries(staging)
        partial.replace(out)
    return PackageReport(out, runtime, zipped, unzipped, kernel, bytecode, requirements, largest)
