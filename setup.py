"""Declares the compiled extensions; all metadata lives in pyproject.toml.

The wrappers use typed memoryviews only, so no numpy headers are needed.

Set FASTSEQ_DEBUG=1 to build with bounds checks and without optimisation, for a
debug test run. Set FASTSEQ_SANITIZE=1 to compile csrc/ and the wrapper with
AddressSanitizer and UndefinedBehaviorSanitizer (any report aborts); build that into its
own folder and run it with libasan preloaded, as ``.ci/sanitize`` does.
"""
import os

from setuptools import Extension, setup

DEBUG = os.environ.get("FASTSEQ_DEBUG", "") not in ("", "0")
SANITIZE = os.environ.get("FASTSEQ_SANITIZE", "") not in ("", "0")
# -O1 keeps the sanitized build fast enough for property tests; frame pointers give whole
# stacks in reports; no recovery, so a report fails the test run instead of scrolling by.
_SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _extension(name: str, sources: list[str]) -> Extension:
    compile_args = ["-std=c++17"] + (["-O0", "-g"] if DEBUG else ["-O3"])
    link_args = []
    if SANITIZE:
        compile_args += _SANITIZE_FLAGS + ["-O1", "-g"]
        link_args += _SANITIZE_FLAGS
    return Extension(
        name,
        sources=sources,
        include_dirs=["csrc"],
        language="c++",
        extra_compile_args=compile_args,
        extra_link_args=link_args,
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
            _extension("fastseq.bptt._gemm_cy", ["fastseq/bptt/_gemm_cy.pyx", "csrc/gemm.cpp"]),
        ]
    )
)
