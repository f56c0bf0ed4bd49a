"""Declares the compiled extensions; all metadata lives in pyproject.toml.

The wrappers use typed memoryviews only, so no numpy headers are needed.

Set FASTSEQ_DEBUG=1 to build with bounds checks and without optimisation, for a
debug test run.
"""
import os

from setuptools import Extension, setup

DEBUG = os.environ.get("FASTSEQ_DEBUG", "") not in ("", "0")


def _extension(name: str, sources: list[str]) -> Extension:
    compile_args = ["-std=c++17"] + (["-O0", "-g"] if DEBUG else ["-O3"])
    return Extension(
        name,
        sources=sources,
        include_dirs=["csrc"],
        language="c++",
        extra_compile_args=compile_args,
    )


def _cythonize(extensions):
    from Cython.Build import cythonize

    directives = {
        "language_level": 3,
        "boundscheck": DEBUG,
        "wraparound": DEBUG,
        "cdivision": not DEBUG,
        "initializedcheck": DEBUG,
    }
    return cythonize(extensions, compiler_directives=directives)


setup(
    ext_modules=_cythonize(
        [
            _extension(
                "fastseq.bptt._schedule_cy",
                ["fastseq/bptt/_schedule_cy.pyx", "csrc/schedule.cpp", "csrc/gather.cpp"],
            ),
        ]
    )
)
