"""Optional libraries (the extras) are imported only where a feature needs them, behind a guard with the install hint.

Each check runs in a fresh interpreter whose import system refuses the optional libraries, as in a
base install (``pip install fraudstream`` without extras).
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import fraudstream.model
import fraudstream.services
from fraudstream.model.errors import EXTRAS
from support import IMPORT_BLOCKER

OPTIONAL = sorted(EXTRAS)  # kafka, crc32c, elasticsearch, opensearchpy, streamlit, altair, pandas, sklearn

# The modules that are a feature needing an extra: importing them without it is the MissingExtra.
FEATURE_MODULES = {
    "fraudstream.services.runners.kafka": "the Kafka runner needs kafka, which is not installed: pip install 'fraudstream[kafka]'",
    "fraudstream.dashboard": "the dashboard needs streamlit, which is not installed: pip install 'fraudstream[dashboard]'",
    "fraudstream.services.api": "the scoring API needs fastapi, which is not installed: pip install 'fraudstream[api]'",
}

BLOCKER = """
import importlib, json, sys, traceback
blocked = set(sys.argv[1].split(","))
""" + IMPORT_BLOCKER + """
results = {}
for module in sys.argv[2:]:
    try:
        importlib.import_module(module)
        results[module] = None
    except BaseException as error:
        results[module] = [type(error).__name__, str(error)]
results["loaded"] = sorted({m.split(".")[0] for m in sys.modules} & blocked)
print(json.dumps(results))
"""


def import_blocked(*modules: str, blocked: list[str] = OPTIONAL) -> dict:
    done = subprocess.run([sys.executable, "-c", BLOCKER, ",".join(blocked), *modules], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def project_modules() -> list[str]:
    names = []
    for package in (fraudstream.model, fraudstream.services):
        names.append(package.__name__)
        names += [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    inside_a_feature = tuple(f + "." for f in FEATURE_MODULES)  # a feature package's modules need its extra too
    return sorted(n for n in names if n not in FEATURE_MODULES and not n.startswith(inside_a_feature)
                  and not n.rsplit(".", 1)[-1].startswith("_"))


def test_the_blocker_blocks() -> None:
    """The check below could not fail if the blocker let the libraries through."""
    assert import_blocked("kafka", "sklearn.ensemble")["kafka"][0] == "ModuleNotFoundError"


def test_every_module_imports_without_the_optional_libraries() -> None:
    modules = project_modules()
    assert "fraudstream.services.kafka.partitioning" in modules and "fraudstream.model.bundle" in modules
    results = import_blocked(*modules)
    failed = {m: r for m, r in results.items() if m != "loaded" and r is not None}
    assert failed == {}
    assert results["loaded"] == []


@pytest.mark.parametrize("module", sorted(FEATURE_MODULES))
def test_a_feature_module_without_its_extra_says_what_to_install(module: str) -> None:
    assert import_blocked(module)[module] == ["MissingExtra", FEATURE_MODULES[module]]


def test_the_feature_modules_import_with_their_extras() -> None:
    assert import_blocked(*FEATURE_MODULES, blocked=["nothing"]) == {**dict.fromkeys(FEATURE_MODULES), "loaded": []}
