#!/usr/bin/env python3
"""PyTorch CPU peer of the reference U-Net training step (tools/bench/kernels/reference-unet.ts).

    OMP_WAIT_POLICY=PASSIVE python3 tools/bench/kernels/torch_unet_step.py --shape 8x96x96 --threads 1 --reps 10

Same architecture (3 levels, 16-32-64, two 3x3 'same' conv + ReLU per level, 2x2 max-pool,
2x2 stride-2 transposed conv, skip concatenation, 1x1 conv to 5 logits; 116,821 parameters),
same loss (mean softmax cross-entropy), same optimizer (Adam, lr 1e-3), same batch shape
(NCHW here, NHWC in TF.js). Prints one JSON line per shape:
{"shape": [n, h, w], "threads": t, "params": p, "median_ms": m, "min_ms": m0, "steps_ms": [...]}.
Exits with status 3 and a message on stderr when torch is not installed.
"""
import argparse
import json
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
    def __init__(self, classes=CLASSES):
        super().__init__()
        w = WIDTHS
        self.down = nn.ModuleList([block(1, w[0]), block(w[0], w[1]), block(w[1], w[2])])
        self.pool = nn.MaxPool2d(2, 2)
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[2], w[1], 2, stride=2), nn.ConvTranspose2d(w[1], w[0], 2, stride=2)])
        self.dec = nn.ModuleList([block(2 * w[1], w[1]), block(2 * w[0], w[0])])
        self.head = nn.Conv2d(w[0], classes, 1)

    def forward(self, x):
        s0 = self.down[0](x)
        s1 = self.down[1](self.pool(s0))
        x = self.down[2](self.pool(s1))
        x = self.dec[0](torch.cat([self.up[0](x), s1], 1))
        x = self.dec[1](torch.cat([self.up[1](x), s0], 1))
        return self.head(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", action="append", default=None, help="NxHxW, repeatable (default 1x128x128 and 8x96x96)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for s in a.shape or ["1x128x128", "8x96x96"]:
        n, h, w = (int(v) for v in s.split("x"))
        model = UNet()
        params = sum(t.numel() for t in model.parameters())
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        x = torch.randn(n, 1, h, w)
        y = torch.randint(0, CLASSES, (n, h, w))

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        for _ in range(a.warmup):
            step()
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            step()
            times.append((time.perf_counter() - t0) * 1000)
        print(json.dumps({"shape": [n, h, w], "threads": a.threads, "params": params, "torch": torch.__version__, "median_ms": statistics.median(times), "min_ms": min(times), "steps_ms": [round(t, 1) for t in times]}), flush=True)


if __name__ == "__main__":
    main()
