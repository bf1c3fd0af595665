"""The build step of `pip install ./python`: the C library built with the project's Makefile and
put in the package; outside a checkout, an installed libgemma8 found by pkg-config is used instead
(the package then holds no copy and loads that one)."""

import re
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HEADER = REPO / "include" / "gemma8.h"


def version() -> str:
    if HEADER.exists():
        return re.search(r'#define GEMMA8_VERSION "([^"]+)"', HEADER.read_text()).group(1)
    out = subprocess.run(["pkg-config", "--modversion", "gemma8"], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(
            "gemma8: neither a checkout (../include/gemma8.h) nor an installed libgemma8 "
            "(pkg-config gemma8) was found"
        )
    return out.stdout.strip()


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        dest = Path(self.build_lib) / "gemma8"
        if not (REPO / "Makefile").exists():
            return  # the installed library, found at import time by pkg-config
        subprocess.run(["make", "-C", str(REPO), "lib"], check=True)
        lib = REPO / "build" / f"libgemma8.so.{version()}"
        shutil.copyfile(lib, dest / "libgemma8.so")


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True  # the wheel holds a compiled library: tagged for this platform


setup(version=version(), cmdclass={"build_py": BuildWithLibrary}, distclass=BinaryDistribution)
