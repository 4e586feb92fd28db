"""PyTorch's fine-tune reference at another seed, for the spread behind the one-seed figure in
../shared/docs/TARTAN.md (ChemProt test 75.9 at seed 0).

Usage: python3 bench/torch_finetune_seed.py SEED TASK EPOCHS [MAXLEN] [BATCH] [LR]
Runs ../shared/reference/torch_finetune.py (read-only, never copied into the repo) with its
fixed `torch.manual_seed(0); random.seed(0)` replaced by SEED, and its two threads by
$TORCH_THREADS when set. Everything else is the shared script's own text.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_venv import REPO, reexec_in_venv

reexec_in_venv(__file__)

SHARED = os.environ.get("TARTAN_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
SCRIPT = os.path.join(SHARED, "reference", "torch_finetune.py")
seed = int(sys.argv[1])
text = open(SCRIPT).read()
for old, new in [
    ("torch.manual_seed(0); random.seed(0)", f"torch.manual_seed({seed}); random.seed({seed})"),
    ("torch.set_num_threads(2)", f"torch.set_num_threads({int(os.environ.get('TORCH_THREADS', 2))})"),
]:
    if old not in text:
        sys.exit(f"{SCRIPT} no longer contains `{old}`; update bench/torch_finetune_seed.py")
    text = text.replace(old, new)
sys.argv = [SCRIPT] + sys.argv[2:]
exec(compile(text, SCRIPT, "exec"), {"__file__": SCRIPT, "__name__": "__main__"})
