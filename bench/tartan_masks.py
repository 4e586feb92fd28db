"""tartan's dropout masks (src/model/dropout.rs) in numpy, and a stand-in for PyTorch's
`F.dropout` that draws them in tartan's order, so that a PyTorch run with dropout on sees the
same masks as a tartan run: every step reseeds the stream; each dropout call of the step (in
forward order: embeddings, then per layer attention probabilities, attention output, feed-forward
output, then the head's two) takes the next call seed; a call's mask is a counter hash of that
seed and the element's row-major position.

    import tartan_masks; tartan_masks.install()
    tartan_masks.STREAM.reseed(tartan_masks.step_seed(run_seed, step))   # before each step's forward
"""
import numpy as np
import torch

M64 = (1 << 64) - 1
CHUNK = 1 << 16
_J = np.arange(CHUNK, dtype=np.uint32)


def splitmix(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def fmix32(h):
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def scales(seed, prob, n):
    """One call's multipliers: 1 / (1 - prob) where kept, 0 where dropped (`apply_mask`)."""
    keep = 1.0 - prob
    threshold = np.uint32(int(min(keep * 4294967296.0, 4294967295.0)))
    scale = np.float32(1.0 / keep)
    out = np.empty(n, dtype=np.float32)
    with np.errstate(over="ignore"):
        for i in range((n + CHUNK - 1) // CHUNK):
            key = splitmix(seed ^ splitmix(i))
            lo, hi = np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32)
            m = min(CHUNK, n - i * CHUNK)
            h = fmix32(fmix32(_J[:m] + lo) ^ hi)
            out[i * CHUNK:i * CHUNK + m] = np.where(h < threshold, scale, np.float32(0.0))
    return out


def step_seed(seed, step):
    """`train::trainer::dropout_step_seed`: the masks' seed for the step after `step` finished ones."""
    return (seed * 1_000_003 + step) & M64


class Stream:
    """`DropoutSeed`: the step's seed and the dropout calls made in it."""

    def __init__(self):
        self.seed, self.calls = 0, 0

    def reseed(self, seed):
        self.seed, self.calls = seed & M64, 0

    def next_call_seed(self):
        self.calls += 1
        return splitmix(self.seed ^ splitmix(self.calls))


STREAM = Stream()


def dropout(input, p=0.5, training=True, inplace=False):
    if not training or p == 0.0:
        return input
    m = torch.from_numpy(scales(STREAM.next_call_seed(), p, input.numel())).reshape(input.shape)
    return input * m


def install():
    """Routes every `torch.nn.functional.dropout` (nn.Dropout and eager attention) through `dropout`."""
    torch.nn.functional.dropout = dropout
