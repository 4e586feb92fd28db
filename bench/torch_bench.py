#!/usr/bin/env python3
"""PyTorch twins of the `tartan bench` workloads, for same-run comparisons (bench/compare.sh).

Each run does one workload in its own process (peak RSS is per process) and prints one JSON
line with the fields `tartan bench` prints: median seconds, the timed repetitions, peak RSS,
threads, workload. The inputs and the work are those of src/cli/bench.rs:

  step      one fine-tune optimizer step on the first ChemProt train texts, truncated to 128
            tokens and padded with copies of their first real token to 16 x 128; labels
            i % 13; head CLS -> dropout 0.1 -> Linear(h, h) + tanh -> dropout -> Linear(h, 13);
            AdamW lr 5e-5, betas (0.9, 0.999), eps 1e-8, weight decay 0.01 except biases and
            LayerNorm; no clipping; dropout on.
  forward   the same batch and model, no autograd, dropout off.
  eval      ChemProt dev (64 examples with --smoke) tokenized, model loaded and scored in
            length-sorted batches of 64; reports examples/s, as tartan.
  meta      one META-TARTAN optimizer step with --aux K masked-LM corpora on batches of
            16 x 128 (every text repeated until it fills 128 tokens, as tartan's `meta` does),
            dev-head sample 32, dev batch 64. --variant reference does it as the TARTAN code
            (../shared/docs/TARTAN.md): a full gradient copy per task, the MLM decoder over
            every position, the fresh dev head fitted for up to 10 AdamW steps each running the
            encoder with autograd on the sample. --variant cached is the same except that the
            sample's encoder output is computed once (no autograd, dropout off) and the head
            is fitted on it, as tartan does.

    bench/torch_bench.py step --threads 2 --reps 5     # installs ../torch-venv if missing
"""
import argparse, json, math, os, resource, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
from torch_venv import reexec_in_venv

reexec_in_venv(__file__)

SHARED = os.environ.get("TARTAN_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("workload", choices=["step", "forward", "eval", "meta"])
ap.add_argument("--model", default=os.path.join(SHARED, "models", "all-MiniLM-L6-v2"))
ap.add_argument("--task", default=os.path.join(SHARED, "datasets", "chemprot"))
ap.add_argument("--reps", type=int, default=5, help="timed repetitions after one warm-up")
ap.add_argument("--aux", type=int, default=1, help="auxiliary corpora for meta")
ap.add_argument("--variant", choices=["reference", "cached"], default="reference", help="meta only")
ap.add_argument("--threads", type=int, default=os.cpu_count(), help="default: one per CPU, as tartan")
ap.add_argument("--smoke", action="store_true", help="tiny sizes, as tartan bench --smoke")
args = ap.parse_args()

import torch, torch.nn as nn, torch.nn.functional as F
import transformers
from tokenizers import Tokenizer
from transformers import BertForMaskedLM, BertModel

transformers.logging.set_verbosity_error()  # the checkpoint has no MLM head; meta starts a fresh one, as tartan
torch.set_num_threads(args.threads)
torch.manual_seed(0)
BATCH, LEN = (2, 16) if args.smoke else (16, 128)
N_LABELS = 13
# tartan's `meta` writes this many examples per file (META_ROWS in src/cli/bench.rs).
META_ROWS = 64


def read_jsonl(name):
    with open(os.path.join(args.task, name)) as f:
        return [json.loads(l) for l in f if l.strip()]


def tokenizer(max_len):
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()
    if max_len:
        tok.enable_truncation(max_len)
    return tok


def head(hidden, dropout):
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.Tanh(), nn.Dropout(dropout),
                         nn.Linear(hidden, N_LABELS))


def no_decay(name):
    return name.endswith("bias") or "LayerNorm" in name


def groups(named, wd):
    return [{"params": [p for n, p in named if not no_decay(n)], "weight_decay": wd},
            {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0}]


def fixed_batch(texts):
    """tartan's fixed_batch: truncate to LEN, then repeat the first real token before [SEP]."""
    out = []
    for e in tokenizer(LEN).encode_batch(texts):
        ids = e.ids
        out.append(ids[:-1] + [ids[1]] * (LEN - len(ids)) + ids[-1:])
    return out


def step_or_forward(forward):
    texts = [r["text"] for r in read_jsonl("train.jsonl")[:BATCH]]
    ids = fixed_batch(texts)
    labels = [i % N_LABELS for i in range(BATCH)]
    enc = BertModel.from_pretrained(args.model, add_pooling_layer=False)
    cls = head(enc.config.hidden_size, 0.1)
    named = list(enc.named_parameters()) + [("head." + n, p) for n, p in cls.named_parameters()]
    opt = torch.optim.AdamW(groups(named, 0.01), lr=5e-5, betas=(0.9, 0.999), eps=1e-8)
    enc.train(not forward)
    cls.train(not forward)
    times = []
    for rep in range(args.reps + 1):
        start = time.perf_counter()
        x = torch.tensor(ids)
        mask = torch.ones_like(x)
        if forward:
            with torch.no_grad():
                cls(enc(input_ids=x, attention_mask=mask).last_hidden_state[:, 0]).numpy()
        else:
            loss = F.cross_entropy(cls(enc(input_ids=x, attention_mask=mask).last_hidden_state[:, 0]),
                                   torch.tensor(labels))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if rep > 0:
            times.append(time.perf_counter() - start)
    return times, {}


def eval_throughput():
    rows = read_jsonl("dev.jsonl")
    n = 64 if args.smoke else len(rows)
    start = time.perf_counter()
    tok = tokenizer(LEN)
    pad = tok.token_to_id("[PAD]")
    ids = [e.ids for e in tok.encode_batch([r["text"] for r in rows[:n]])]
    enc = BertModel.from_pretrained(args.model, add_pooling_layer=False).eval()
    cls = head(enc.config.hidden_size, 0.0).eval()
    order = sorted(range(n), key=lambda i: len(ids[i]))  # stable, as tartan's eval_batches
    with torch.no_grad():
        for b in range(0, n, 64):
            batch = [ids[i] for i in order[b:b + 64]]
            width = max(map(len, batch))
            x = torch.tensor([s + [pad] * (width - len(s)) for s in batch])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
            torch.softmax(cls(enc(input_ids=x, attention_mask=mask).last_hidden_state[:, 0]), 1).numpy()
    return n / (time.perf_counter() - start), {}


def filled_texts(texts):
    """tartan's filled_texts: each of the first META_ROWS non-blank texts repeated (joined by a
    space) until it has at least LEN tokens, so truncation leaves LEN real tokens."""
    tok = tokenizer(None)
    out = []
    for text in (t.strip() for t in texts):
        if not text:
            continue
        filled = text
        while len(tok.encode(filled).ids) < LEN:
            filled += " " + text
        out.append(filled)
        if len(out) == META_ROWS:
            return [e.ids for e in tokenizer(LEN).encode_batch(out)]
    sys.exit(f"need {META_ROWS} texts to fill the META-TARTAN batches")


class Cycle:
    """Batches of consecutive rows, wrapping around (every row has the same length)."""

    def __init__(self, rows):
        self.rows, self.at = rows, 0

    def next(self, n):
        picked = [self.rows[(self.at + i) % len(self.rows)] for i in range(n)]
        self.at = (self.at + n) % len(self.rows)
        return picked


def meta():
    K = args.aux
    dev_batch, sample_size = (4, 4) if args.smoke else (64, 32)
    with open(os.path.join(args.task, "train.txt")) as f:
        corpus = Cycle(filled_texts(f.read().split("\n")))
    # (ids, label) with labels i % 13, as the files tartan's `meta` writes.
    labelled = lambda name: [(ids, i % N_LABELS)
                             for i, ids in enumerate(filled_texts([r["text"] for r in read_jsonl(name)]))]
    train, dev = Cycle(labelled("train.jsonl")), Cycle(labelled("dev.jsonl"))
    tok = tokenizer(LEN)
    mask_id = tok.token_to_id("[MASK]")
    special = torch.tensor(sorted(i for i, t in tok.get_added_tokens_decoder().items() if t.special))

    mlm = BertForMaskedLM.from_pretrained(args.model)
    enc = mlm.bert
    H = enc.config.hidden_size
    cls = head(H, 0.1)
    mlm.train()
    cls.train()
    mlm_params = list(mlm.parameters())  # encoder first, then the MLM head (decoder tied)
    enc_params = list(enc.parameters())
    cls_params = list(cls.parameters())
    n_enc = len(enc_params)
    total = args.reps + 2
    warm = int(0.06 * total)
    sched = lambda s: s / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm))
    opt = torch.optim.AdamW(groups(list(mlm.named_parameters()), 0.01), lr=1e-4, betas=(0.9, 0.98), eps=1e-6)
    cls_opt = torch.optim.AdamW(cls_params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, sched) for o in (opt, cls_opt)]
    logits = torch.zeros(1 + K)
    dev_iters = []

    def classify(h, rows):
        x = torch.tensor([r[0] for r in rows])
        y = torch.tensor([r[1] for r in rows])
        return F.cross_entropy(h(enc(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[:, 0]), y)

    def masked(rows):
        """BERT masking as Hugging Face's collator: 15% of non-special tokens, 80/10/10."""
        x = torch.tensor(rows)
        labels = x.clone()
        chosen = torch.bernoulli(torch.full(x.shape, 0.15)).bool() & ~torch.isin(x, special)
        labels[~chosen] = -100
        to_mask = torch.bernoulli(torch.full(x.shape, 0.8)).bool() & chosen
        x[to_mask] = mask_id
        to_random = torch.bernoulli(torch.full(x.shape, 0.5)).bool() & chosen & ~to_mask
        x[to_random] = torch.randint(enc.config.vocab_size, x.shape)[to_random]
        return x, labels

    def accumulate(params, grads, scale):
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is None:
                    continue
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.add_(g * scale)

    def fit_dev_head():
        sample = dev.next(sample_size)
        dev_head = head(H, 0.1 if args.variant == "reference" else 0.0)
        dev_opt = torch.optim.AdamW(dev_head.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.1)
        if args.variant == "cached":
            enc.eval()
            with torch.no_grad():
                x = torch.tensor([r[0] for r in sample])
                feats = enc(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[:, 0]
            enc.train()
            y = torch.tensor([r[1] for r in sample])
        prev = 1e10
        for i in range(10):
            if args.variant == "cached":
                loss = F.cross_entropy(dev_head(feats), y)
            else:
                loss = classify(dev_head, sample)
            grads = torch.autograd.grad(loss, list(dev_head.parameters()))
            for p, g in zip(dev_head.parameters(), grads):
                p.grad = g
            dev_opt.step()
            if abs(loss.item() - prev) < 1e-3:
                break
            prev = loss.item()
        dev_iters.append(i + 1)
        return dev_head

    def dot(a, b):
        """Over the encoder's gradients, in f32 as the reference."""
        return sum(float(torch.dot(x.reshape(-1), y.reshape(-1))) for x, y in zip(a, b))

    def one_step():
        w = torch.softmax(logits, 0).tolist()
        aux_grads = []
        for k in range(K):
            x, labels = masked(corpus.next(BATCH))
            loss = mlm(input_ids=x, attention_mask=torch.ones_like(x), labels=labels).loss
            g = torch.autograd.grad(loss, mlm_params, allow_unused=True)
            aux_grads.append(g[:n_enc])
            accumulate(mlm_params, g, w[1 + k])
        prim = torch.autograd.grad(classify(cls, train.next(BATCH)), enc_params + cls_params)
        dev_head = fit_dev_head()
        dev_g = torch.autograd.grad(classify(dev_head, dev.next(dev_batch)), enc_params + list(dev_head.parameters()))
        dev_g = dev_g[:n_enc]
        dev_norm = math.sqrt(dot(dev_g, dev_g))
        for t, g in enumerate([prim[:n_enc]] + aux_grads):
            cos = dot(dev_g, g) / (dev_norm * math.sqrt(dot(g, g)))
            logits[t] -= 1e-2 * -cos  # meta lr 1e-2 on the logit gradient -cos (accum 1)
        accumulate(enc_params + cls_params, prim, w[0])
        del aux_grads, prim, dev_g
        torch.nn.utils.clip_grad_norm_(mlm_params, 1.0)
        torch.nn.utils.clip_grad_norm_(cls_params, 1.0)
        cls_opt.step()
        opt.step()
        for s in scheds:
            s.step()
        mlm.zero_grad(set_to_none=True)
        cls_opt.zero_grad(set_to_none=True)

    times = []
    for rep in range(args.reps + 1):
        start = time.perf_counter()
        one_step()
        if rep > 0:
            times.append(time.perf_counter() - start)
    return times, {"dev_head_iters": dev_iters[1:]}


if args.workload == "meta" and args.aux < 1:
    sys.exit("--aux must be at least 1")
if args.workload in ("step", "forward"):
    result, extra = step_or_forward(args.workload == "forward")
    name = f"{'train step' if args.workload == 'step' else 'forward'} {BATCH}x{LEN}"
elif args.workload == "eval":
    result, extra = eval_throughput()
    name = "evaluation examples/s over ChemProt dev (batch 64)"
else:
    result, extra = meta()
    name = f"meta-tartan step, {args.aux} aux, batches of {BATCH}x{LEN} ({args.variant})"
report = {"median": result if isinstance(result, float) else sorted(result)[len(result) // 2]}
if isinstance(result, list):
    report["times"] = result
report.update(extra)
report.update({"workload": name, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "threads": torch.get_num_threads(), "torch": torch.__version__})
print(json.dumps(report), flush=True)
