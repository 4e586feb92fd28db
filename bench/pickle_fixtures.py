#!/usr/bin/env python3
"""Writes tests/fixtures/pickle/: one tiny BertForMaskedLM (vocabulary 96, hidden 32, 2 layers,
every parameter drawn at random so no LayerNorm is the identity) saved the ways older
checkpoints ship, plus pickles that run code when unpickled. tests/pickle.rs reads them.

- config.json, model.safetensors: transformers' own save, the reference the others must equal.
- pytorch_model.bin: `torch.save(model.state_dict())` as transformers 4.x wrote it with
  safe_serialization=False (ZIP container, OrderedDict with `_metadata`, the tied decoder stored
  sharing the embeddings' storage, an int64 `position_ids` buffer). Embeddings are float16,
  layer 0 bfloat16, the rest float32, as half-precision uploads mix them.
- pytorch_model-0000{1,2}-of-00002.bin, pytorch_model.bin.index.json: the same dict in two shards.
- legacy.bin: SciBERT/BioBERT-style, the pre-1.6 non-ZIP container with float32 values,
  `LayerNorm.gamma`/`beta` names, the pooler and NSP head of BertForPreTraining.
- broadcast.bin: a 256 MiB view (stride 0) of a one-element storage in a file of a few KiB,
  which loading must refuse before allocating it.
- hostile-zip.bin, hostile-legacy.bin, hostile-plain.bin: real weights with an `os.system`
  call hidden in `_metadata`, the same in the legacy container, and a bare pickle whose root is
  `builtins.exec`. Each creates `tartan-pickle-executed` in the working folder when unpickled by
  Python; this script checks that it does (in a temporary folder), so the fixtures have teeth.

It also writes fuzz/seeds/pickle_file/legacy-two-tensors, a small benign seed for that target.

    bench/pickle_fixtures.py        # installs ../torch-venv if missing, then runs in it
"""
import json, os, pickle, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
from torch_venv import reexec_in_venv

reexec_in_venv(__file__)

from collections import OrderedDict

import torch
from transformers import BertConfig, BertForMaskedLM

OUT = os.path.join(REPO, "tests", "fixtures", "pickle")
MARKER = "tartan-pickle-executed"
os.makedirs(OUT, exist_ok=True)

torch.manual_seed(0)
config = BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=64)
model = BertForMaskedLM(config).eval()
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.5)
model.bert.embeddings.to(torch.float16)
model.bert.encoder.layer[0].to(torch.bfloat16)

with tempfile.TemporaryDirectory() as tmp:
    model.save_pretrained(tmp)
    for name in ["config.json", "model.safetensors"]:
        os.replace(os.path.join(tmp, name), os.path.join(OUT, name))


def out(name):
    return os.path.join(OUT, name)


state = model.state_dict()
state["bert.embeddings.position_ids"] = torch.arange(config.max_position_embeddings).unsqueeze(0)
assert "cls.predictions.decoder.weight" in state, "the tied decoder should be stored, as 4.x did"
torch.save(state, out("pytorch_model.bin"))

keys = list(state)
shards = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
weight_map = {}
for i, part in enumerate(shards, 1):
    file = f"pytorch_model-{i:05d}-of-{len(shards):05d}.bin"
    torch.save(OrderedDict((k, state[k].clone()) for k in part), out(file))
    weight_map.update({k: file for k in part})
total = sum(t.numel() * t.element_size() for t in state.values())
with open(out("pytorch_model.bin.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def old_name(key):
    if ".LayerNorm." in key:
        return key.replace(".LayerNorm.weight", ".LayerNorm.gamma").replace(".LayerNorm.bias", ".LayerNorm.beta")
    return key


old = OrderedDict((old_name(k), v.float()) for k, v in model.state_dict().items())
old["cls.predictions.decoder.weight"] = old["bert.embeddings.word_embeddings.weight"]
old["bert.pooler.dense.weight"] = torch.randn(32, 32) * 0.5
old["bert.pooler.dense.bias"] = torch.randn(32) * 0.5
old["cls.seq_relationship.weight"] = torch.randn(2, 32) * 0.5
old["cls.seq_relationship.bias"] = torch.randn(2) * 0.5
torch.save(old, out("legacy.bin"), _use_new_zipfile_serialization=False)


torch.save({"bert.embeddings.word_embeddings.weight": torch.zeros(1).expand(1 << 26)}, out("broadcast.bin"))

seeds = os.path.join(REPO, "fuzz", "seeds", "pickle_file")
os.makedirs(seeds, exist_ok=True)
torch.save(OrderedDict([("bert.embeddings.LayerNorm.gamma", torch.randn(32)),
                        ("bert.embeddings.LayerNorm.beta", torch.randn(32).half())]),
           os.path.join(seeds, "legacy-two-tensors"), _use_new_zipfile_serialization=False)


class System:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


class Exec:
    def __reduce__(self):
        return (exec, (f"open({MARKER!r}, 'w').close()",))


weights = OrderedDict((k, state[k]) for k in keys[:3])
hostile = OrderedDict(weights)
hostile["_metadata"] = {"": {"version": 1, "hook": System()}}
torch.save(hostile, out("hostile-zip.bin"))
torch.save(OrderedDict(weights, payload=System()), out("hostile-legacy.bin"), _use_new_zipfile_serialization=False)
with open(out("hostile-plain.bin"), "wb") as f:
    pickle.dump(Exec(), f, protocol=2)

# Every benign file holds only what torch's safe loader accepts; every hostile one runs its
# payload under a plain unpickle (and is refused by the safe loader).
for name in ["pytorch_model.bin", "pytorch_model-00001-of-00002.bin", "legacy.bin", "broadcast.bin"]:
    torch.load(out(name), weights_only=True)
cwd = os.getcwd()
for name in ["hostile-zip.bin", "hostile-legacy.bin", "hostile-plain.bin"]:
    try:
        torch.load(out(name), weights_only=True)
        raise SystemExit(f"{name}: torch's safe loader accepted it")
    except pickle.UnpicklingError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        if name == "hostile-plain.bin":
            with open(out(name), "rb") as f:
                pickle.load(f)
        else:
            torch.load(out(name), weights_only=False)
        assert os.path.exists(MARKER), f"{name} did not run its payload"
        os.chdir(cwd)
for name in sorted(os.listdir(OUT)):
    print(f"{os.path.getsize(out(name)):>8}  {name}")
