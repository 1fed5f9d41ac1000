"""Build glue: maps the user's top-level folders to ``fraudstream.<folder>`` and builds the C forest kernel.

The layout (model/, services/, ...) is the user's; nothing is importable as a bare ``model`` or
``services``. The C extension is optional at run time: a pure-numpy scorer gives the same answers.
"""

from pathlib import Path

from setuptools import Extension, find_packages, setup

LAYERS = ["model", "services", "dashboard", "operator"]
# Folders of data files (no Python) shipped inside a package, each listed as a package of its own
# so setuptools installs it and says nothing; mapping.py reads the presets through importlib.resources.
DATA_FOLDERS = {"services/sources/presets": ["*.toml"], "dashboard/maps": ["*.json", "NOTICE.md"]}

packages: list[str] = []  # "fraudstream" itself is an implicit namespace package
package_dir: dict[str, str] = {}
for layer in LAYERS:
    if (Path(layer) / "__init__.py").exists():
        packages.append(f"fraudstream.{layer}")
        package_dir[f"fraudstream.{layer}"] = layer
        for sub in find_packages(layer):
            packages.append(f"fraudstream.{layer}.{sub}")
            package_dir[f"fraudstream.{layer}.{sub}"] = f"{layer}/" + sub.replace(".", "/")
package_data: dict[str, list[str]] = {"fraudstream.model": ["py.typed"], "fraudstream.services": ["py.typed"]}
for folder, patterns in DATA_FOLDERS.items():
    name = "fraudstream." + folder.replace("/", ".")
    packages.append(name)
    package_dir[name] = folder
    package_data[name] = patterns

setup(
    packages=packages,
    package_dir=package_dir,
    package_data=package_data,
    ext_modules=[
        Extension(
            "fraudstream.model.detectors._forest",
            sources=["model/detectors/_forest.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ],
)
