"""Packaging hook: the wheel carries the job code, the component YAMLs and the environments (metadata: pyproject)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: Project folders a job is built from; an installed azfinetune finds them under azfinetune/_shipped/.
SHIPPED = ("jobs/src", "jobs/components", "jobs/pipelines", "jobs/examples", "environments")
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".azfinetune", "outputs", "mlruns")


class BuildPyWithJobs(build_py):
    """build_py that also copies SHIPPED into the package; an editable install reads them from the checkout."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        root = Path(__file__).resolve().parent
        for relative in SHIPPED:
            target = Path(self.build_lib, "azfinetune", "_shipped", relative)
            shutil.copytree(root / relative, target, ignore=_IGNORE, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithJobs})
