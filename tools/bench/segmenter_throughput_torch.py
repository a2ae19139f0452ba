#!/usr/bin/env python3
"""PyTorch CPU peer of tools/bench/segmenter-throughput.ts: inference throughput of the
reference U-Net as the segmenter serves it.

    OMP_WAIT_POLICY=PASSIVE python3 tools/bench/segmenter_throughput_torch.py --slices 64 --size 128 --batch 8 --threads 1 --reps 5

Architecture = the exported ONNX graph of @purify/models' REFERENCE_UNET with BatchNorm folded into
the convolutions: 3 levels of two (3x3 'same' conv with bias + ReLU), 16-32-64 channels, 2x2
max-pool, 2x2 stride-2 transposed conv, skip concatenation [skip, up], 1x1 conv to 5 classes,
softmax over classes. Weights are PyTorch's default init (speed does not depend on the values).
Input float32 [batch, 1, size, size]; each rep runs ceil(slices / batch) batches under
torch.inference_mode(). Prints one JSON line:
{"threads", "batch", "size", "slices", "torch", "median_ms", "min_ms", "slices_per_s", "runs_ms"}.
Exits with status 3 and a message on stderr when torch is not installed.
"""
import argparse
import json
import math
import statistics
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    print("torch is not installed (Debian: python3-torch)", file=sys.stderr)
    sys.exit(3)

WIDTHS = (16, 32, 64)
CLASSES = 5


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        w = WIDTHS
        self.down = nn.ModuleList([block(1, w[0]), block(w[0], w[1]), block(w[1], w[2])])
        self.pool = nn.MaxPool2d(2, 2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[2], w[1], 2, stride=2), nn.ConvTranspose2d(w[1], w[0], 2, stride=2)])
        self.dec = nn.ModuleList([block(2 * w[1], w[1]), block(2 * w[0], w[0])])
        self.head = nn.Conv2d(w[0], CLASSES, 1)

    def forward(self, x):
        s0 = self.down[0](x)
        s1 = self.down[1](self.pool(s0))
        x = self.down[2](self.pool(s1))
        x = self.dec[0](torch.cat([s1, self.up[0](x)], 1))
        x = self.dec[1](torch.cat([s0, self.up[1](x)], 1))
        return torch.softmax(self.head(x), dim=1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--slices", type=int, default=64)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = UNet().eval()
    x = torch.rand(a.batch, 1, a.size, a.size)
    batches = math.ceil(a.slices / a.batch)

    def run():
        with torch.inference_mode():
            for _ in range(batches):
                model(x)

    for _ in range(a.warmup):
        run()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times)
    print(json.dumps({"threads": a.threads, "batch": a.batch, "size": a.size, "slices": batches * a.batch, "torch": torch.__version__,
                      "median_ms": med, "min_ms": min(times), "slices_per_s": batches * a.batch / (med / 1000), "runs_ms": [round(t, 1) for t in times]}), flush=True)


if __name__ == "__main__":
    main()
