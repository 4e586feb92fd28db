#!/usr/bin/env python3
"""Helpers of bench/gpu-pack.sh (here) and bench/gpu-smoke.sh (on the GPU machine).

    gpu_smoke.py half SRC DST            # MiniLM folder -> the same with fp16 weights (stdlib only)
    gpu_smoke.py expand SRC DST          # back to f32 (stdlib only)
    gpu_smoke.py base SRC DST            # roberta-base's layer shapes, random weights, SRC's tokenizer
    gpu_smoke.py torch --model M --task T --out OUT   # PyTorch's steps, one OUT/torch-*.json each
    gpu_smoke.py summary OUT             # OUT/*.json -> OUT/summary.json and OUT/summary.md

The PyTorch steps are the same maths as `tartan bench step` and `tartan bench meta --aux 1`, on
the same GPU: a fine-tune step (encoder + TARTAN head, AdamW lr 5e-5, betas (0.9, 0.999), eps
1e-8, weight decay 0.01, no clipping) on a fixed B x L batch of ChemProt training text filled
to exactly L tokens; and a META-TARTAN step as tartan does it (src/weighting/meta.rs): the dev
gradient first (dev-sample CLS features computed once without autograd, a fresh head fitted on
them for at most 10 AdamW steps, then the gradient of a dev batch of 64 through head and
encoder), then per task its gradient, its cosine with the dev gradient over the encoder, and
its weighted sum into the parameters' gradients; encoder and heads clipped separately at 1.0;
AdamW; one SGD step on the task logits. Batches are real text padded to the longest, as
tartan's are (tartan also groups examples of similar length, so its batches hold less padding).
bf16 is autocast (weights and optimizer in f32), what a PyTorch user would reach for first.
"""
import argparse, json, os, random, statistics, struct, sys, time

DTYPES = {"F32": ("f", 4), "F16": ("e", 2)}


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def copy_files(src, dst, names):
    """Copies those of `names` that `src` has into `dst`."""
    for name in names:
        if os.path.exists(os.path.join(src, name)):
            with open(os.path.join(src, name), "rb") as f, open(os.path.join(dst, name), "wb") as g:
                g.write(f.read())


def convert(src, dst, want):
    """Copies a model folder, rewriting model.safetensors with every float tensor as `want`."""
    os.makedirs(dst, exist_ok=True)
    copy_files(src, dst, ("config.json",) + TOKENIZER_FILES)
    with open(os.path.join(src, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out_header, chunks, offset = {}, [], 0
    for key, meta in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0] if kv[0] != "__metadata__" else -1):
        if key == "__metadata__":
            out_header[key] = meta
            continue
        a, b = meta["data_offsets"]
        raw = body[a:b]
        if meta["dtype"] in DTYPES and meta["dtype"] != want:
            code, size = DTYPES[meta["dtype"]]
            values = struct.unpack(f"<{(b - a) // size}{code}", raw)
            raw = struct.pack(f"<{len(values)}{DTYPES[want][0]}", *values)
            meta = dict(meta, dtype=want)
        out_header[key] = dict(meta, data_offsets=[offset, offset + len(raw)])
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(out_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as g:
        g.write(struct.pack("<Q", len(text)))
        g.write(text)
        for c in chunks:
            g.write(c)


def base(src, dst):
    """A BERT folder with roberta-base's layer shapes (12 layers, hidden 768, 12 heads, FFN 3072)
    and random weights, for the MFU of a model larger than MiniLM: roberta-base itself cannot
    travel (no network there, 64 MiB carried) and its BPE tokenizer only changes the embedding
    table, which the step's FLOPs do not count. Keeps `src`'s tokenizer and vocabulary."""
    import torch
    from transformers import BertConfig, BertModel

    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config.update(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    torch.manual_seed(0)
    model = BertModel(BertConfig(**config), add_pooling_layer=False)
    model.save_pretrained(dst, safe_serialization=True)
    with open(os.path.join(dst, "config.json"), "w") as f:  # the same keys as src's, not this transformers' own
        json.dump(config, f, indent=2)
    copy_files(src, dst, TOKENIZER_FILES)
    print(json.dumps({"model": dst, "parameters": sum(p.numel() for p in model.parameters()), **config}))


# ---------------------------------------------------------------- PyTorch steps

class Ctx:
    """The encoder, tokenizer and data, loaded once for every timed configuration."""

    def __init__(self, args):
        import torch
        from tokenizers import Tokenizer
        from transformers import BertModel

        torch.manual_seed(0)
        random.seed(0)
        torch.backends.cuda.matmul.allow_tf32 = False  # f32 means f32, as in tartan
        torch.backends.cudnn.allow_tf32 = False
        self.torch, self.dev = torch, torch.device(args.device)
        self.enc = BertModel.from_pretrained(args.model, add_pooling_layer=False).to(self.dev)
        self.enc.train()
        self.tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
        self.tok.no_padding()
        self.train = read_task(os.path.join(args.task, "train.jsonl"))
        self.dev_rows = read_task(os.path.join(args.task, "dev.jsonl"))
        with open(os.path.join(args.task, "train.txt"), encoding="utf-8") as f:
            self.lines = [l.strip() for l in f if l.strip()]
        self.labels = {l: i for i, l in enumerate(sorted({str(r["label"]) for r in self.train}))}

    def encode(self, texts, length):
        self.tok.enable_truncation(length)
        return [self.tok.encode(t).ids for t in texts]

    def pad(self, seqs):
        torch = self.torch
        s = max(len(x) for x in seqs)
        ids = torch.zeros(len(seqs), s, dtype=torch.long)
        mask = torch.zeros(len(seqs), s, dtype=torch.long)
        for i, x in enumerate(seqs):
            ids[i, : len(x)] = torch.tensor(x)
            mask[i, : len(x)] = 1
        return ids.to(self.dev), mask.to(self.dev)

    def autocast(self, dtype):
        return self.torch.autocast(self.dev.type, dtype=self.torch.bfloat16, enabled=dtype == "bf16")

    def cls_vec(self, ids, mask):
        return self.enc(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]

    def sync(self):
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize()

    def timed(self, step, reps):
        """Median seconds of `reps` steps after one warm-up, and the peak memory PyTorch's
        allocator held from the device (reserved) and handed out (allocated), in MiB."""
        cuda = self.dev.type == "cuda"
        step()
        self.sync()
        if cuda:
            self.torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            step()
            self.sync()
            times.append(time.perf_counter() - start)
        mem = {}
        if cuda:
            mem = {"peak_reserved_mb": self.torch.cuda.max_memory_reserved() / 2**20,
                   "peak_allocated_mb": self.torch.cuda.max_memory_allocated() / 2**20}
        return statistics.median(times), mem


def head(h, n):
    import torch.nn as nn

    return nn.Sequential(nn.Dropout(0.1), nn.Linear(h, h), nn.Tanh(), nn.Dropout(0.1), nn.Linear(h, n))


def read_task(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l) for l in f if l.strip()]


def finetune_step(c, batch, length, dtype):
    """tartan bench step: a fixed batch filled to exactly `length` with real tokens."""
    import torch.nn.functional as F

    torch = c.torch
    seqs = c.encode([r["text"] for r in c.train[:batch]], length)
    for ids in seqs:
        while len(ids) < length:
            ids.insert(len(ids) - 1, ids[1])
    ids, mask = c.pad(seqs)
    labels = torch.tensor([i % 13 for i in range(batch)], device=c.dev)
    cls = head(c.enc.config.hidden_size, 13).to(c.dev)
    opt = torch.optim.AdamW(list(c.enc.parameters()) + list(cls.parameters()), lr=5e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

    def step():
        with c.autocast(dtype):
            loss = F.cross_entropy(cls(c.cls_vec(ids, mask)).float(), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def meta_step(c, batch, length, dtype):
    """tartan bench meta --aux 1: META-TARTAN as src/weighting/meta.rs does it."""
    import torch.nn.functional as F
    from transformers.models.bert.modeling_bert import BertOnlyMLMHead

    torch, enc, cfg = c.torch, c.enc, c.enc.config
    n_labels = len(c.labels)
    cls = head(cfg.hidden_size, n_labels).to(c.dev)
    mlm = BertOnlyMLMHead(cfg).to(c.dev)
    mlm.predictions.decoder.weight = enc.embeddings.word_embeddings.weight  # tied, as tartan's
    enc_params = list(enc.parameters())
    head_params = list(cls.parameters()) + [p for n, p in mlm.named_parameters() if "decoder.weight" not in n]
    opt = torch.optim.AdamW(
        [{"params": enc_params, "lr": 1e-4, "weight_decay": 0.01}, {"params": head_params, "lr": 1e-3, "weight_decay": 0.1}],
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    special = {c.tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    mask_id = c.tok.token_to_id("[MASK]")
    dev_sample = random.sample(c.dev_rows, 32)
    state = {"logits": torch.zeros(2)}

    def labelled(rows):
        ids, mask = c.pad(c.encode([r["text"] for r in rows], length))
        return ids, mask, torch.tensor([c.labels.get(str(r["label"]), 0) for r in rows], device=c.dev)

    def masked_batch():
        seqs = c.encode(random.sample(c.lines, batch), length)
        targets = []
        for s in seqs:
            t = [-100] * len(s)
            for j, tok in enumerate(s):
                if tok not in special and random.random() < 0.15:
                    t[j] = tok
                    u = random.random()
                    s[j] = mask_id if u < 0.8 else (random.randrange(cfg.vocab_size) if u < 0.9 else tok)
            targets.append(t)
        ids, mask = c.pad(seqs)
        lab = torch.full(ids.shape, -100, dtype=torch.long)
        for i, t in enumerate(targets):
            lab[i, : len(t)] = torch.tensor(t)
        return ids, mask, lab.to(c.dev)

    def dev_gradient():
        ids, mask, y = labelled(dev_sample)
        with torch.no_grad(), c.autocast(dtype):
            feats = c.cls_vec(ids, mask).float()
        fresh = head(cfg.hidden_size, n_labels).to(c.dev)
        fopt = torch.optim.AdamW(fresh.parameters(), lr=1e-3, weight_decay=0.1)
        previous = None
        for _ in range(10):
            loss = F.cross_entropy(fresh(feats), y)
            fopt.zero_grad()
            loss.backward()
            fopt.step()
            if previous is not None and abs(previous - loss.item()) < 1e-3:
                break
            previous = loss.item()
        ids, mask, y = labelled(random.sample(c.dev_rows, 64))
        with c.autocast(dtype):
            loss = F.cross_entropy(fresh(c.cls_vec(ids, mask)).float(), y)
        return torch.autograd.grad(loss, enc_params)

    def task_loss(t):
        with c.autocast(dtype):
            if t == 0:
                ids, mask, y = labelled(random.sample(c.train, batch))
                return F.cross_entropy(cls(c.cls_vec(ids, mask)).float(), y)
            ids, mask, lab = masked_batch()
            hidden = enc(input_ids=ids, attention_mask=mask).last_hidden_state
            picked = lab.view(-1) != -100
            return F.cross_entropy(mlm(hidden.reshape(-1, cfg.hidden_size)[picked]).float(), lab.view(-1)[picked])

    def step():
        g_dev = dev_gradient()
        dev_norm = torch.sqrt(sum((g.float() ** 2).sum() for g in g_dev))
        weights = torch.softmax(state["logits"], 0)
        cos = []
        for t in range(2):
            own = torch.autograd.grad(task_loss(t), enc_params + head_params, allow_unused=True)
            enc_own = own[: len(enc_params)]
            dot = sum((a.float() * b.float()).sum() for a, b in zip(enc_own, g_dev))
            norm = torch.sqrt(sum((a.float() ** 2).sum() for a in enc_own))
            cos.append((dot / (norm * dev_norm + 1e-12)).item())
            for p, g in zip(enc_params + head_params, own):
                if g is not None:
                    p.grad = weights[t].item() * g if p.grad is None else p.grad + weights[t].item() * g
        torch.nn.utils.clip_grad_norm_(enc_params, 1.0)
        torch.nn.utils.clip_grad_norm_([p for p in head_params if p.grad is not None], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state["logits"] = state["logits"] + 1e-2 * torch.tensor(cos)  # SGD on -cos

    return step


def torch_all(args):
    """Every (kind, shape, dtype) asked for, one JSON file each in `args.out`."""
    c = Ctx(args)
    for kind in args.kinds.split(","):
        for shape in args.shapes.split(","):
            batch, length = map(int, shape.split("x"))
            for dtype in args.dtypes.split(","):
                name = f"torch-{args.tag}{kind}-{shape}-{dtype}"
                try:
                    make = finetune_step if kind == "step" else meta_step
                    median, mem = c.timed(make(c, batch, length, dtype), args.reps if kind == "step" else max(1, args.reps // 2))
                    doc = {"workload": f"torch {kind} {shape} {dtype}", "median": median, **mem, "torch": c.torch.__version__,
                           "attention": c.enc.config._attn_implementation, "device": str(c.dev)}
                    if c.dev.type == "cuda":
                        doc["gpu"] = c.torch.cuda.get_device_name(0)
                except Exception as e:  # one failed configuration (out of memory, say) must not stop the others
                    doc = {"workload": f"torch {kind} {shape} {dtype}", "error": f"{type(e).__name__}: {e}"[:2000]}
                print(json.dumps(doc), flush=True)
                with open(os.path.join(args.out, name + ".json"), "w") as f:
                    f.write(json.dumps(doc) + "\n")
                c.enc.zero_grad(set_to_none=True)
                if c.dev.type == "cuda":
                    c.torch.cuda.empty_cache()


# ---------------------------------------------------------------- summary

def non_embedding_params(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    h, i, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
    cls_head = (h * h + h) + (h * 13 + 13)
    return layers * per_layer + cls_head, c


def step_flops(model_dir, batch, length):
    """6 x non-embedding parameters x tokens, plus attention's 12 x layers x hidden x length per token."""
    n, c = non_embedding_params(model_dir)
    tokens = batch * length
    return 6 * n * tokens + 12 * c["num_hidden_layers"] * c["hidden_size"] * length * tokens


def summary(out):
    peak = float(os.environ.get("PEAK_TFLOPS", "989")) * 1e12
    model = os.environ.get("SMOKE_MODEL", "")
    base_model = os.environ.get("SMOKE_BASE_MODEL", "")
    results = {}
    for name in sorted(os.listdir(out)):
        if name.endswith(".json") and not name.startswith("summary"):
            key = name[:-5]
            with open(os.path.join(out, name)) as f:
                text = f.read().strip()
            try:  # one JSON document (tartan train prints it over several lines), else its last line
                results[key] = json.loads(text)
            except ValueError:
                try:
                    results[key] = json.loads(text.splitlines()[-1])
                except (ValueError, IndexError) as e:
                    results[key] = {"error": f"unreadable: {e}"}
            for ext, field in ((".mem", "gpu_mem_peak_mb"), (".wall", "wall_s")):
                extra = os.path.join(out, key + ext)
                if os.path.exists(extra) and open(extra).read().strip():
                    results[key][field] = float(open(extra).read())
    rows = []
    # (tag, model folder, shapes, kinds): MiniLM, then the roberta-base-shaped random model.
    sets = [("", model, ("32x128", "64x512"), ("step", "meta")), ("base-", base_model, ("64x512",), ("step",))]
    cells = [(t, m, s, k, d) for t, m, shapes, kinds in sets for s in shapes for k in kinds for d in ("f32", "bf16")]
    for tag, model_dir, shape, kind, dtype in cells:
        b, l = map(int, shape.split("x"))
        made = model_dir and os.path.exists(os.path.join(model_dir, "config.json"))  # base-model may have failed
        flops = step_flops(model_dir, b, l) if made else None
        t = results.get(f"tartan-{tag}{kind}-{shape}-{dtype}", {})
        p = results.get(f"torch-{tag}{kind}-{shape}-{dtype}")
        if p is None:  # the PyTorch process did not get this far
            process = "torch-base" if tag else "torch-all"
            p = {"error": "PyTorch: " + str(results.get(process, {}).get("error", "no result"))}
        what = f"{'roberta-base-shaped ' if tag else ''}{kind} {shape} {dtype}"
        row = {"workload": what, "tartan_s": t.get("median"), "torch_s": p.get("median"),
               "tartan_gpu_mem_mb": t.get("gpu_mem_peak_mb"), "torch_reserved_mb": p.get("peak_reserved_mb"),
               "torch_allocated_mb": p.get("peak_allocated_mb"),
               "note": "; ".join(str(x) for x in (t.get("note"), t.get("error"), p.get("error")) if x)}
        if row["tartan_s"] and row["torch_s"]:
            row["tartan_over_torch"] = row["tartan_s"] / row["torch_s"]
        if kind == "step" and flops:
            for who in ("tartan", "torch"):
                if row[f"{who}_s"]:
                    row[f"{who}_mfu"] = flops / row[f"{who}_s"] / peak
        rows.append(row)
    doc = {"peak_tflops_used": peak / 1e12, "mfu_flops": "6 x non-embedding params x tokens + 12 x layers x hidden x length x tokens (training)",
           "rows": rows, "raw": results}
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(doc, f, indent=1)
    def fmt(v, spec, unit=""):
        return "-" if v is None else format(v, spec) + unit

    lines = [f"MFU against {peak / 1e12:.0f} TFLOP/s (H200 SXM dense bf16, spec), fine-tune steps only (META-TARTAN's "
             "batches are real text of varying length). tartan's memory: nvidia-smi's peak while it ran, CUDA context "
             "included; PyTorch's: its allocator's peak reserved, context excluded.", "",
             "| workload | tartan | PyTorch | tartan / PyTorch | tartan MFU | PyTorch MFU | tartan GPU mem (MiB) | PyTorch reserved (MiB) | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        note = r["note"].replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {r['workload']} | {fmt(r['tartan_s'], '.4f', ' s')} | {fmt(r['torch_s'], '.4f', ' s')} | "
                     f"{fmt(r.get('tartan_over_torch'), '.2f')} | {fmt(r.get('tartan_mfu'), '.2%')} | {fmt(r.get('torch_mfu'), '.2%')} | "
                     f"{fmt(r['tartan_gpu_mem_mb'], '.0f')} | {fmt(r['torch_reserved_mb'], '.0f')} | {note} |")
    lines.append("")
    for key, what in (("parity", "CPU vs GPU"), ("parity-bf16", "CPU f32 vs GPU bf16")):
        par = results.get(key, {"error": "no result"})
        if "error" in par:
            lines.append(f"{what} (tartan, 16x128, dropout off): {par['error']}")
        else:
            lines.append(f"{what} (tartan, 16x128, dropout off): logits rel L2 {par.get('logits_rel_l2'):.2e}, encoder "
                         f"gradients rel L2 {par.get('grads_rel_l2'):.2e} (worst {par.get('worst_parameter')}: "
                         f"{par.get('worst_parameter_rel_l2'):.2e}), loss {par.get('loss_cpu')} vs {par.get('loss_device')}: {par.get('verdict')}")
    for run in ("train-finetune-200", "train-meta-tartan-200", "train-finetune-200-bf16"):
        r = results.get(run)
        if r is None:
            continue
        acc = lambda split: (r.get(split) or {}).get("accuracy")
        lines.append(f"{run}: dev accuracy {fmt(acc('dev'), '.4f')}, test accuracy {fmt(acc('test'), '.4f')} (best step "
                     f"{r.get('best_step')}), training {fmt(r.get('train_seconds'), '.1f', ' s')}, wall {fmt(r.get('wall_s'), '.0f', ' s')}, "
                     f"GPU memory {fmt(r.get('gpu_mem_peak_mb'), '.0f', ' MiB')}" + (f"; {r['error']}" if "error" in r else ""))
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd in ("half", "expand") and len(sys.argv) == 4:
        return convert(sys.argv[2], sys.argv[3], "F16" if cmd == "half" else "F32")
    if cmd == "base" and len(sys.argv) == 4:
        return base(sys.argv[2], sys.argv[3])
    if cmd == "summary" and len(sys.argv) == 3:
        return summary(sys.argv[2])
    if cmd == "torch":
        ap = argparse.ArgumentParser(prog="gpu_smoke.py torch")
        ap.add_argument("--model", required=True)
        ap.add_argument("--task", required=True)
        ap.add_argument("--out", required=True)
        ap.add_argument("--kinds", default="step,meta")
        ap.add_argument("--shapes", default="32x128,64x512")
        ap.add_argument("--dtypes", default="f32,bf16")
        ap.add_argument("--reps", type=int, default=6, help="fine-tune steps timed; META-TARTAN half as many")
        ap.add_argument("--device", default="cuda")
        ap.add_argument("--tag", default="", help="prefix of the result files' names after torch-, as base-")
        return torch_all(ap.parse_args(sys.argv[2:]))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
