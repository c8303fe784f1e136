# Strength oracle of tests/integration/augment/strength.rs (appended to oracle.py, whose strong_op it
# uses): the reference's training transforms drawing their own random parameters, applied twice to
# each of the first N Fashion-MNIST test images. argv: idx3 images .gz, N, mean, std, out dir.
# Writes the images (raw uint8, N*28*28) for the Rust side and, per augmentation, the per-image
# statistics of the two views (JSON): mean |view1 - view2|, and each view's pixel mean and std,
# all in normalised units.
import gzip, os, random
import torch
import torchvision.transforms as T

def load_idx3(path, n):
    raw = gzip.open(path, 'rb').read()
    count, h, w = (int.from_bytes(raw[4 + 4 * k:8 + 4 * k], 'big') for k in range(3))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, h, w)[:n].copy()

def simclr_transform(mean, std):
    # The reference's `simclr` strategy (torchvision, PIL path) for 28x28 one-channel images.
    return T.Compose([
        T.RandomResizedCrop(28, scale=(0.2, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.ToTensor(),
        T.Normalize([mean], [std]),
    ])

# The reference's RandAugment list: (op, min, max); the geometric ops flip their sign with p 1/2.
OPS = [('Identity', 0, 1), ('AutoContrast', 0, 1), ('Equalize', 0, 1), ('Rotate', -30, 30),
       ('Solarize', 0, 256), ('Color', 0.05, 0.95), ('Contrast', 0.05, 0.95),
       ('Brightness', 0.05, 0.95), ('Sharpness', 0.05, 0.95), ('ShearX', -0.1, 0.1),
       ('TranslateX', -0.1, 0.1), ('TranslateY', -0.1, 0.1), ('Posterize', 4, 8), ('ShearY', -0.1, 0.1)]
MIRRORED = {'Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY'}

def strong_transform(mean, std, num_ops=4, cutout=8):
    # The reference's `ours` strategy: flip, RandomCrop(28) (a no-op on 28x28), `num_ops` ops drawn
    # with replacement, ToTensor, Normalize, Cutout with a random side in [1, cutout].
    post = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(28)])
    tail = T.Compose([T.ToTensor(), T.Normalize([mean], [std])])
    def apply(img):
        img = post(img)
        for name, lo, hi in random.choices(OPS, k=num_ops):
            v = random.random() * float(hi - lo) + lo
            if name in MIRRORED and random.random() > 0.5:
                v = -v
            img = strong_op(img, name, v)
        x = tail(img)
        h, w = x.shape[1:]
        length = random.randint(1, cutout)
        y, xc = np.random.randint(h), np.random.randint(w)
        y1, y2 = np.clip(y - length // 2, 0, h), np.clip(y + length // 2, 0, h)
        x1, x2 = np.clip(xc - length // 2, 0, w), np.clip(xc + length // 2, 0, w)
        x[:, y1:y2, x1:x2] = 0.0
        return x
    return apply

def stats(transform, images):
    l1, means, stds = [], [], []
    for a in images:
        img = Image.fromarray(a, 'L')
        v1, v2 = transform(img), transform(img)
        l1.append(float((v1 - v2).abs().mean()))
        for v in (v1, v2):
            means.append(float(v.mean()))
            stds.append(float(v.std(unbiased=False)))
    return {'l1': l1, 'mean': means, 'std': stds}

if __name__ == '__main__':
    path, n, mean, std, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    images = load_idx3(path, n)
    images.tofile(os.path.join(out, 'images.u8'))
    random.seed(0); np.random.seed(0); torch.manual_seed(0)
    result = {'simclr': stats(simclr_transform(mean, std), images),
              'strong': stats(strong_transform(mean, std), images)}
    json.dump(result, open(os.path.join(out, 'reference.json'), 'w'))
