"""PyTorch's fine-tune reference at another seed, for the spread behind the one-seed figure in
../shared/docs/TARTAN.md (ChemProt test 75.9 at seed 0).

Usage: python3 bench/torch_finetune_seed.py [--dropout-from-step-1] SEED TASK EPOCHS [MAXLEN] [BATCH] [LR]
Runs ../shared/reference/torch_finetune.py (read-only, never copied into the repo) with its
fixed `torch.manual_seed(0); random.seed(0)` replaced by SEED, and its two threads by
$TORCH_THREADS when set. Everything else is the shared script's own text.

`--dropout-from-step-1` puts the encoder in training mode before the first step. The shared
script does not: `from_pretrained` returns the encoder in eval mode and only the first
evaluation's `enc.train()` switches it, so its first epoch trains with the encoder's dropout
off and only the head's on. Hugging Face `Trainer`, the TARTAN reference and `tartan train`
have dropout on from step 1.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_venv import REPO, reexec_in_venv

reexec_in_venv(__file__)

SHARED = os.environ.get("TARTAN_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
SCRIPT = os.path.join(SHARED, "reference", "torch_finetune.py")
dropout_from_step_1 = "--dropout-from-step-1" in sys.argv
args = [a for a in sys.argv[1:] if a != "--dropout-from-step-1"]
seed = int(args[0])
text = open(SCRIPT).read()
FROM_PRETRAINED = 'enc = BertModel.from_pretrained(MODEL, add_pooling_layer=False, attn_implementation="sdpa")'
edits = [
    ("torch.manual_seed(0); random.seed(0)", f"torch.manual_seed({seed}); random.seed({seed})"),
    ("torch.set_num_threads(2)", f"torch.set_num_threads({int(os.environ.get('TORCH_THREADS', 2))})"),
]
if dropout_from_step_1:
    edits.append((FROM_PRETRAINED, FROM_PRETRAINED + "; enc.train()"))
for old, new in edits:
    if old not in text:
        sys.exit(f"{SCRIPT} no longer contains `{old}`; update bench/torch_finetune_seed.py")
    text = text.replace(old, new)
sys.argv = [SCRIPT] + args[1:]
exec(compile(text, SCRIPT, "exec"), {"__file__": SCRIPT, "__name__": "__main__"})
