"""What pyproject.toml cannot say: the wheel carries `reglab-keras-backend.pth` at its root, the startup hook
that picks Keras's JAX backend where TensorFlow is not installed (see src/_reglab_keras_backend.py)."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

HOOK = "reglab-keras-backend.pth"


class BuildWithHook(build_py):
    def run(self):
        super().run()
        self.copy_file(os.path.join("src", HOOK), os.path.join(self.build_lib, HOOK))

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, HOOK)]


setup(cmdclass={"build_py": BuildWithHook})
