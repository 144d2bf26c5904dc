"""The one compiled part: the canvas kernels of the sub-pixel alignment
(src/napari_nanosims/processing/alignment/_canvas.c). Optional: where no C compiler is
found the build goes on without it, and the alignment uses numba and numpy instead
(processing/alignment/_kernels.py). Everything else is in pyproject.toml."""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: For gcc and clang: comparisons that may be computed ahead (min and max without a
#: branch, so that the clipping loops vectorise); the sums marked in the source may be
#: added in vector lanes (OpenMP's simd pragmas only: no threads, no runtime library);
#: no multiplication fused with an addition.
UNIX_FLAGS = ["-O3", "-fno-trapping-math", "-fno-signed-zeros", "-fopenmp-simd",
              "-ffp-contract=off"]


class BuildCanvasKernels(build_ext):
    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            for extension in self.extensions:
                extension.extra_compile_args = [*extension.extra_compile_args, *UNIX_FLAGS]
        super().build_extensions()


setup(cmdclass={"build_ext": BuildCanvasKernels},
      ext_modules=[Extension("napari_nanosims.processing.alignment._canvas",
                             ["src/napari_nanosims/processing/alignment/_canvas.c"],
                             optional=True)])
