# The reference implementation (Unsupervised-Classification: models/resnet_cifar.py, resnet_stl.py,
# models.py, losses/losses.py, utils/evaluate_utils.py, utils/ema.py, the scan_train step of
# utils/train_utils.py), written out independently in PyTorch for the integration tests, with a width
# parameter for tiny networks. Nothing here calls this project's code: the tests hand it inputs and
# weights as files and compare what it computes.
import json, sys
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
from safetensors.torch import load_file, save_file

EPS = 1e-8

class BasicBlock(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, s, 1, bias=False); self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False); self.bn2 = nn.BatchNorm2d(o)
        self.shortcut = nn.Sequential()
        if s != 1 or i != o:
            self.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))

class ResNet(nn.Module):
    # stl: resnet_stl.py (MaxPool2d(2, 2, padding=1) after the stem, AvgPool2d(7, stride=1));
    # otherwise resnet_cifar.py (no max-pool, adaptive average pool).
    def __init__(self, cin, w, stl=False):
        super().__init__()
        self.stl = stl
        self.conv1 = nn.Conv2d(cin, w, 3, 1, 1, bias=False); self.bn1 = nn.BatchNorm2d(w)
        if stl:
            self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2, padding=1)
            self.avgpool = nn.AvgPool2d(7, stride=1)
        ws = [w, 2 * w, 4 * w, 8 * w]; prev = w
        for li, o in enumerate(ws):
            s = 1 if li == 0 else 2
            setattr(self, f"layer{li+1}", nn.Sequential(BasicBlock(prev, o, s), BasicBlock(o, o, 1))); prev = o
    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        if self.stl: out = self.maxpool(out)
        for l in [self.layer1, self.layer2, self.layer3, self.layer4]: out = l(out)
        out = self.avgpool(out) if self.stl else F.adaptive_avg_pool2d(out, 1)
        return torch.flatten(out, 1)

class Contrastive(nn.Module):
    def __init__(self, cin, w, proj, stl=False):
        super().__init__(); self.backbone = ResNet(cin, w, stl)
        self.contrastive_head = nn.Sequential(nn.Linear(8*w, 8*w), nn.ReLU(), nn.Linear(8*w, proj))
    def forward(self, x): return F.normalize(self.contrastive_head(self.backbone(x)), dim=1)

class Clustering(nn.Module):
    def __init__(self, cin, w, heads, c, stl=False):
        super().__init__(); self.backbone = ResNet(cin, w, stl)
        self.cluster_head = nn.ModuleList([nn.Linear(8*w, c) for _ in range(heads)])
    def forward(self, x, forward_pass='default'):
        if forward_pass == 'default':
            f = self.backbone(x); return [h(f) for h in self.cluster_head]
        if forward_pass == 'backbone': return self.backbone(x)
        if forward_pass == 'head': return [h(x) for h in self.cluster_head]
        raise ValueError(forward_pass)

def entropy(x, input_as_probabilities=True):
    x_ = torch.clamp(x, min=EPS); b = x_ * torch.log(x_)
    return -b.sum(dim=1).mean() if len(b.size()) == 2 else -b.sum()

def scan_loss(anchors, neighbors, w):
    # losses.SCANLoss.forward
    b, n = anchors.size()
    pa = F.softmax(anchors, 1); pn = F.softmax(neighbors, 1)
    sim = torch.bmm(pa.view(b, 1, n), pn.view(b, n, 1)).squeeze()
    cons = nn.BCELoss()(sim, torch.ones_like(sim))
    ent = entropy(torch.mean(pa, 0))
    return cons - w * ent, cons, ent

def scan_evaluate(probs_per_head, neighbors):
    # evaluate_utils.scan_evaluate: per head (total, consistency, entropy), then the argmin head.
    out = []
    for probs in probs_per_head:
        anchors = torch.arange(neighbors.size(0)).view(-1, 1).expand_as(neighbors)
        ent = entropy(torch.mean(probs, dim=0)).item()
        sim = torch.matmul(probs, probs.t())[anchors.contiguous().view(-1), neighbors.contiguous().view(-1)]
        cons = F.binary_cross_entropy(sim, torch.ones_like(sim)).item()
        out.append((cons - ent, cons, ent))
    return out, int(np.argmin([o[0] for o in out]))

class EMA:
    # utils/ema.py
    def __init__(self, model, alpha=0.999):
        self.shadow = {k: v.clone().detach() for k, v in model.state_dict().items()}
        self.param_keys = [k for k, _ in model.named_parameters()]
        self.alpha = alpha
    def update_params(self, model):
        state = model.state_dict()
        for name in self.param_keys:
            self.shadow[name].copy_(self.alpha * self.shadow[name] + (1 - self.alpha) * state[name])
    def apply_shadow(self, model):
        model.load_state_dict(self.shadow, strict=True)

def nchw(images_u8_nhwc, mean, std):
    # ToTensor + Normalize in float32, as torchvision does.
    x = torch.from_numpy(np.ascontiguousarray(images_u8_nhwc)).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s

def state_of(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
