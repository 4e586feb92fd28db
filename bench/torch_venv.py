"""Runs the calling bench script inside ../torch-venv (PyTorch 2.13.0, transformers,
tokenizers), creating the venv first when it is missing: DEVELOPERS.md's recipe, in one place
for every script that needs torch. Import and call it before importing torch."""
import os, subprocess, sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(os.path.dirname(REPO), "torch-venv")


def reexec_in_venv(script):
    """Returns when already inside the venv; otherwise replaces this process with `script`
    (the caller's `__file__`) run by the venv's Python with the same arguments."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
        subprocess.check_call([os.path.join(VENV, "bin", "pip"), "install", "torch==2.13.0", "transformers", "tokenizers"])
    os.execv(py, [py, os.path.abspath(script)] + sys.argv[1:])
