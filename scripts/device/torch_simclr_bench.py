"""PyTorch eager baseline for the SimCLR epoch time: the same ResNet-18 (CIFAR stem), SimCLR head,
NT-Xent loss (temperature 0.1) and SGD (momentum 0.9, weight decay 1e-4) as `scan-pretext`, at
PyTorch's fastest settings (bf16 autocast + channels-last), with the augmentation batched on the GPU
(random resized crop + flip through one affine grid per batch, brightness/contrast jitter, random
grayscale): the whole dataset stays on the GPU as uint8. Prints one line: images/s and s/epoch.

Usage: torch_simclr_bench.py N_IMAGES EPOCHS [BATCH]"""
import sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.sc = nn.Sequential()
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(out)) + self.sc(x))


class ResNet18(nn.Module):
    def __init__(self, w=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        layers, cin = [], w
        for i, cout in enumerate([w, 2 * w, 4 * w, 8 * w]):
            for j in range(2):
                layers.append(Block(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(cin, cin), nn.ReLU(), nn.Linear(cin, 128))

    def forward(self, x):
        f = F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1).flatten(1)
        return F.normalize(self.head(f), dim=1)


def augment(x):
    """x: uint8 [B, 32, 32, 3] on the GPU -> normalised float [B, 3, 32, 32], channels-last."""
    b = x.shape[0]
    x = x.permute(0, 3, 1, 2).float() / 255
    scale = torch.empty(b, device=x.device).uniform_(0.2, 1.0).sqrt()
    flip = torch.where(torch.rand(b, device=x.device) < 0.5, -1.0, 1.0)
    tx = (torch.rand(b, device=x.device) * 2 - 1) * (1 - scale)
    ty = (torch.rand(b, device=x.device) * 2 - 1) * (1 - scale)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, 0, 2], theta[:, 1, 2] = scale * flip, scale, tx, ty
    x = F.grid_sample(x, F.affine_grid(theta, x.shape, align_corners=False), align_corners=False)
    jitter = torch.rand(b, device=x.device) < 0.8
    bright = torch.empty(b, 1, 1, 1, device=x.device).uniform_(0.6, 1.4)
    contrast = torch.empty(b, 1, 1, 1, device=x.device).uniform_(0.6, 1.4)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    xj = ((x * bright - mean) * contrast + mean).clamp(0, 1)
    x = torch.where(jitter[:, None, None, None], xj, x)
    gray = torch.rand(b, device=x.device) < 0.2
    g = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None].expand_as(x)
    x = torch.where(gray[:, None, None, None], g, x)
    x = (x - 0.5) / 0.25
    return x.contiguous(memory_format=torch.channels_last)


def nt_xent(z, t=0.1):
    n = z.shape[0] // 2
    sim = z @ z.t() / t
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def main():
    n, epochs = int(sys.argv[1]), int(sys.argv[2])
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 512
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    data = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, device=dev)
    model = ResNet18().to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.4, momentum=0.9, weight_decay=1e-4)
    times = []
    for epoch in range(epochs + 1):  # epoch 0 warms up cuDNN autotuning
        torch.cuda.synchronize()
        start = time.time()
        perm = torch.randperm(n, device=dev)
        for i in range(n // batch):
            x = data[perm[i * batch:(i + 1) * batch]]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                z = model(torch.cat([augment(x), augment(x)]))
                loss = nt_xent(z.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        if epoch > 0:
            times.append(time.time() - start)
    t = sorted(times)[len(times) // 2]
    # One more epoch with the device synchronised around the augmentation: the time split.
    aug = 0.0
    torch.cuda.synchronize()
    start = time.time()
    perm = torch.randperm(n, device=dev)
    for i in range(n // batch):
        torch.cuda.synchronize()
        a0 = time.time()
        x = data[perm[i * batch:(i + 1) * batch]]
        views = torch.cat([augment(x), augment(x)])
        torch.cuda.synchronize()
        aug += time.time() - a0
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nt_xent(model(views).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    total = time.time() - start
    print(f"pytorch-eager bf16+channels-last simclr: {n / t:.0f} images/s, {t:.2f} s/epoch (median of {epochs}; "
          f"split epoch: augmentation {aug:.2f} s + compute {total - aug:.2f} s)")


if __name__ == "__main__":
    main()
