#!/usr/bin/env python3
"""Checks that a model saved by tartan (a run's best/, or a `tartan export` folder) works in
transformers as it is: AutoTokenizer + AutoModelForSequenceClassification, and
pipeline("text-classification", top_k=None), give the probabilities `tartan predict` gives,
within 1e-4 on every label of the first N texts of a JSONL file.

Without --model it first trains a small ChemProt fine-tune of all-MiniLM-L6-v2 from ../shared
(a few dozen steps; enough to move the head off its start) with the tartan binary.

    bench/check_export.py                       # installs ../torch-venv if missing, runs in it
    bench/check_export.py --model runs/x/best --texts data/test.jsonl
    TARTAN_BIN=target/release/tartan bench/check_export.py

Prints one JSON line with the figures; exits 1 when a difference exceeds the tolerance.
Hand-run (needs PyTorch), never part of `cargo test` or CI.
"""
import argparse, json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
from torch_venv import reexec_in_venv

reexec_in_venv(__file__)

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

torch.set_num_threads(2)
SHARED = os.environ.get("TARTAN_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
CHEMPROT = os.path.join(SHARED, "datasets", "chemprot")
TOLERANCE = 1e-4


def default_binary():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.environ.get("TARTAN_BIN", os.path.join(target, "release", "tartan"))


def train_small(tartan, work, steps):
    """A short ChemProt fine-tune whose best/ is the model to check."""
    dev = os.path.join(work, "dev.jsonl")
    with open(os.path.join(CHEMPROT, "dev.jsonl")) as src, open(dev, "w") as out:
        out.writelines(src.readlines()[:200])
    config = os.path.join(work, "run.toml")
    with open(config, "w") as f:
        f.write(f"""strategy = "finetune"
output_dir = "{os.path.join(work, 'run')}"
[model]
name = "{os.path.join(SHARED, 'models', 'all-MiniLM-L6-v2')}"
max_length = 128
[task]
train = "{os.path.join(CHEMPROT, 'train.jsonl')}"
dev = "{dev}"
[train]
batch_size = 16
max_steps = {steps}
lr = 1e-4
head_lr = 1e-3
[eval]
every_steps = {steps}
""")
    subprocess.run([tartan, "train", "--config", config], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(work, "run", "best")


def tartan_probs(tartan, model, texts, work):
    path = os.path.join(work, "texts.jsonl")
    with open(path, "w") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
    out = subprocess.run([tartan, "predict", "--model", model, "--input", path], check=True, capture_output=True, text=True)
    return [json.loads(line)["probabilities"] for line in out.stdout.splitlines()]


def transformers_probs(model_dir, texts):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    labels = model.config.id2label
    rows = []
    with torch.no_grad():
        for i in range(0, len(texts), 16):
            enc = tok(texts[i:i + 16], truncation=True, padding=True, return_tensors="pt")
            probs = torch.softmax(model(**enc).logits, dim=-1)
            rows += [{labels[j]: p[j].item() for j in range(len(p))} for p in probs]
    return rows, type(model).__name__, tok.model_max_length


def pipeline_probs(model_dir, texts):
    clf = pipeline("text-classification", model=model_dir, top_k=None, device=-1)
    return [{d["label"]: d["score"] for d in row} for row in clf(texts, truncation=True, batch_size=16)]


def max_diff(ours, theirs):
    if [sorted(a) for a in ours] != [sorted(b) for b in theirs]:
        sys.exit("the label names differ between tartan and transformers: check config.json's id2label")
    return max(abs(a[k] - b[k]) for a, b in zip(ours, theirs) for k in a)


def same_argmax(ours, theirs):
    return sum(max(a, key=a.get) == max(b, key=b.get) for a, b in zip(ours, theirs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a saved model folder; default: train a small ChemProt fine-tune first")
    ap.add_argument("--texts", default=os.path.join(CHEMPROT, "test.jsonl"), help="JSONL with a `text` per line")
    ap.add_argument("--n", type=int, default=100, help="how many texts")
    ap.add_argument("--steps", type=int, default=30, help="training steps when no --model is given")
    ap.add_argument("--tartan", default=default_binary(), help="the tartan binary")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        model = args.model or train_small(args.tartan, work, args.steps)
        with open(args.texts) as f:
            texts = [json.loads(line)["text"] for line in f if line.strip()][:args.n]
        ours = tartan_probs(args.tartan, model, texts, work)
        auto, arch, max_len = transformers_probs(model, texts)
        piped = pipeline_probs(model, texts)
    figures = {
        "model": model if args.model else f"ChemProt fine-tune of all-MiniLM-L6-v2, {args.steps} steps",
        "architecture": arch,
        "model_max_length": max_len,
        "texts": len(texts),
        "max_abs_diff_auto_model": max_diff(ours, auto),
        "max_abs_diff_pipeline": max_diff(ours, piped),
        "same_label_auto_model": same_argmax(ours, auto),
        "same_label_pipeline": same_argmax(ours, piped),
        "tolerance": TOLERANCE,
    }
    print(json.dumps(figures))
    if max(figures["max_abs_diff_auto_model"], figures["max_abs_diff_pipeline"]) > TOLERANCE:
        sys.exit(1)


if __name__ == "__main__":
    main()
