"""The ctypes declarations against the header: every struct's size and every field's offset and
size, as the C compiler lays them out."""

import ctypes
import shutil
import subprocess

import pytest

from gemma8 import _lib

from conftest import REPO


def test_structs_match_the_header(tmp_path):
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "gemma8.h"', "int main(void) {"]
    for cname, st in _lib.STRUCTS.items():
        lines.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for fname, _ in st._fields_:
            lines.append(
                f'printf("{cname}.{fname} %zu %zu\\n", offsetof({cname}, {fname}), '
                f"sizeof((({cname} *)0)->{fname}));"
            )
    lines += ["return 0;", "}"]
    src = tmp_path / "abi.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "abi"
    subprocess.run([cc, "-std=c11", "-I", str(REPO / "include"), str(src), "-o", str(exe)], check=True)
    c_layout = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    py_layout = []
    for cname, st in _lib.STRUCTS.items():
        py_layout.append(f"{cname} {ctypes.sizeof(st)}")
        for fname, _ in st._fields_:
            f = getattr(st, fname)
            py_layout.append(f"{cname}.{fname} {f.offset} {f.size}")
    assert py_layout == c_layout


def test_the_library_is_the_headers_version():
    header = (REPO / "include" / "gemma8.h").read_text()
    import gemma8

    assert f'#define GEMMA8_VERSION "{gemma8.__version__}"' in header
