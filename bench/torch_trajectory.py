#!/usr/bin/env python3
"""Writes tests/fixtures/minilm-trajectory.json: ten AdamW steps of all-MiniLM-L6-v2 with the
end-task head on fixed ChemProt batches, in PyTorch, as the reference fine-tune does them
(AdamW betas (0.9, 0.98), eps 1e-6, weight decay 0.01 except biases and LayerNorm, one global
clip at 1.0, linear warm-up then decay). Dropout is off so both sides see the same function.

With `--dropout` it writes tests/fixtures/minilm-trajectory-dropout.json instead: the same
steps with dropout 0.1 on (encoder and head), every mask drawn as tartan draws it
(bench/tartan_masks.py) from the step seeds of a run with seed 7, so that both sides again see
the same function and tartan's dropout (placement, call order, masks, backward) is checked
against PyTorch's.

The head starts from a closed-form pattern that Rust recomputes (no weights to ship); its
scale is torch.nn.Linear's bound, 1/sqrt(fan_in). The fixture holds the token ids, labels,
per-step loss and gradient norm, the gradient norm of every parameter at step 1, and how far
every parameter moved after the last step. tests/it/parity.rs replays it.

With `--epoch SEED OUT` it writes OUT instead: one whole epoch (131 steps) of the ChemProt
fine-tune at the reference settings (batch 32, max length 128, lr 5e-5, warm-up 6% of a 3-epoch
schedule), batches shuffled as ../shared/reference/torch_finetune.py shuffles them with
`random.seed(SEED)`, plus the dev split's token ids and PyTorch's dev predictions after the
epoch. Too large to commit (2.8 MB) and too slow for CI (about 6 minutes a side): the ignored
test `minilm_epoch_trajectory_matches_pytorch` replays it on request.

    bench/torch_trajectory.py                    # installs ../torch-venv if missing, then runs in it
    bench/torch_trajectory.py --dropout          # tests/fixtures/minilm-trajectory-dropout.json
    bench/torch_trajectory.py --epoch 0 /tmp/epoch.json [--dropout]
    TARTAN_EPOCH_TRAJECTORY=/tmp/epoch.json cargo test --release --test it epoch_trajectory -- --ignored
"""
import json, math, os, random, sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
from torch_venv import reexec_in_venv

reexec_in_venv(__file__)

import torch, torch.nn as nn, torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import BertModel

torch.set_num_threads(2)
SHARED = os.environ.get("TARTAN_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
MODEL = os.path.join(SHARED, "models", "all-MiniLM-L6-v2")
DATA = os.path.join(SHARED, "datasets", "chemprot")
ARGS = [a for a in sys.argv[1:] if a != "--dropout"]
DROPOUT = 0.1 if "--dropout" in sys.argv else 0.0
EPOCH = ARGS[:1] == ["--epoch"]
if EPOCH:
    SEED, OUT = int(ARGS[1]), ARGS[2]
    BATCH, MAXLEN, LR = 32, 128, 5e-5
else:
    SEED = 7
    STEPS, BATCH, MAXLEN, LR, WARMUP, TOTAL = 10, 8, 48, 1e-4, 2, 10
if DROPOUT:
    import tartan_masks
    tartan_masks.install()

rows = [json.loads(l) for l in open(os.path.join(DATA, "train.jsonl"))]
if EPOCH:
    order = list(range(len(rows)))
    random.seed(SEED)
    random.shuffle(order)
    rows = [rows[i] for i in order]
    STEPS = (len(rows) + BATCH - 1) // BATCH
    TOTAL = 3 * STEPS
    WARMUP = int(0.06 * TOTAL)
labels = sorted({str(r["label"]) for r in rows})
tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
tok.enable_truncation(MAXLEN)
tok.enable_padding(pad_id=0, pad_token="[PAD]")

enc = BertModel.from_pretrained(MODEL, add_pooling_layer=False, attn_implementation="eager")
enc.train(DROPOUT > 0)  # in eval mode dropout is off and gradients still flow
assert not DROPOUT or enc.config.hidden_dropout_prob == enc.config.attention_probs_dropout_prob == DROPOUT
H, N = enc.config.hidden_size, len(labels)


def pattern(rows_, cols, fan_in, phase):
    """The closed-form start of a head parameter, shape [rows_, cols] in torch layout."""
    b = 1.0 / math.sqrt(fan_in)
    return torch.tensor([[b * math.sin(0.7 * i + 1.3 * j + phase) for j in range(cols)] for i in range(rows_)])


head = nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(H, H), nn.Tanh(), nn.Dropout(DROPOUT), nn.Linear(H, N))
dense, out_proj = head[1], head[4]
with torch.no_grad():
    dense.weight.copy_(pattern(H, H, H, 0.1))
    dense.bias.copy_(pattern(1, H, H, 0.2)[0])
    out_proj.weight.copy_(pattern(N, H, H, 0.3))
    out_proj.bias.copy_(pattern(1, N, H, 0.4)[0])
# Hugging Face names for the encoder, ours for the head (norms do not depend on layout).
named = list(enc.named_parameters()) + [
    ("classifier.dense.weight", dense.weight), ("classifier.dense.bias", dense.bias),
    ("classifier.out_proj.weight", out_proj.weight), ("classifier.out_proj.bias", out_proj.bias)]
nd = lambda n: "bias" in n or "LayerNorm" in n
opt = torch.optim.AdamW([{"params": [p for n, p in named if not nd(n)], "weight_decay": 0.01},
                         {"params": [p for n, p in named if nd(n)], "weight_decay": 0.0}],
                        lr=LR, betas=(0.9, 0.98), eps=1e-6)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: s / max(1, WARMUP) if s < WARMUP else max(0.0, (TOTAL - s) / max(1, TOTAL - WARMUP)))
start = {n: p.detach().clone() for n, p in named}

batches, losses, norms, first_grads = [], [], [], {}
for step in range(STEPS):
    rs = rows[step * BATCH:(step + 1) * BATCH]
    e = tok.encode_batch([r["text"] for r in rs])
    ids = torch.tensor([x.ids for x in e])
    mask = torch.tensor([x.attention_mask for x in e])
    y = torch.tensor([labels.index(str(r["label"])) for r in rs])
    batches.append({"ids": [[i for i, m in zip(x.ids, x.attention_mask) if m] for x in e], "labels": y.tolist()})
    if DROPOUT:
        tartan_masks.STREAM.reseed(tartan_masks.step_seed(SEED, step))
    loss = F.cross_entropy(head(enc(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]), y)
    loss.backward()
    if step == 0:  # before clipping, which scales the gradients in place
        first_grads = {n: p.grad.norm().item() for n, p in named}
    norm = torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
    losses.append(loss.item())
    norms.append(norm.item())
    opt.step(); sched.step(); opt.zero_grad()

moved = {n: (p.detach() - start[n]).norm().item() for n, p in named}
out = {
    "settings": {"steps": STEPS, "total_steps": TOTAL, "batch": BATCH, "max_length": MAXLEN, "lr": LR, "warmup_steps": WARMUP,
                 "betas": [0.9, 0.98], "eps": 1e-6, "weight_decay": 0.01, "clip": 1.0, "n_labels": N,
                 "dropout": DROPOUT, "seed": SEED, "torch": torch.__version__},
    "batches": batches, "losses": losses, "grad_norms": norms,
    "first_grad_norms": first_grads, "moved": moved,
}
path = os.path.join(REPO, "tests", "fixtures", "minilm-trajectory-dropout.json" if DROPOUT else "minilm-trajectory.json")
if EPOCH:
    dev = [json.loads(l) for l in open(os.path.join(DATA, "dev.jsonl"))]
    enc.eval(); head.eval()
    out["dev"] = {"ids": [], "labels": [labels.index(str(r["label"])) for r in dev], "predictions": []}
    with torch.no_grad():
        for i in range(0, len(dev), 64):
            e = tok.encode_batch([r["text"] for r in dev[i:i + 64]])
            ids, mask = torch.tensor([x.ids for x in e]), torch.tensor([x.attention_mask for x in e])
            out["dev"]["predictions"] += head(enc(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]).argmax(-1).tolist()
            out["dev"]["ids"] += [[i for i, m in zip(x.ids, x.attention_mask) if m] for x in e]
    path = OUT
with open(path, "w") as f:
    json.dump(out, f)
print("wrote", path, "losses", [round(l, 4) for l in losses])
