# PIL oracle of the augmentation tests (tests/integration/augment.rs): runs the jobs of a JSON spec
# (argv[1]) on raw uint8 NHWC files and writes raw outputs. The ops are the reference code's
# (data/augment.py of Unsupervised-Classification) and torchvision's PIL functional ops, written with
# PIL and NumPy only.
import json, sys
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

def to_pil(a):
    return Image.fromarray(a[:, :, 0], 'L') if a.shape[2] == 1 else Image.fromarray(a, 'RGB')

def from_pil(im, c):
    a = np.asarray(im, dtype=np.uint8)
    return a.reshape(a.shape[0], a.shape[1], c)

def strong_op(img, op, v):
    # The reference's data/augment.py ops, with the sign already applied to v.
    if op == 'Identity': return img
    if op == 'AutoContrast': return ImageOps.autocontrast(img)
    if op == 'Equalize': return ImageOps.equalize(img)
    if op == 'Rotate': return img.rotate(v)
    if op == 'Solarize': return ImageOps.solarize(img, v)
    if op == 'Color': return ImageEnhance.Color(img).enhance(v)
    if op == 'Contrast': return ImageEnhance.Contrast(img).enhance(v)
    if op == 'Brightness': return ImageEnhance.Brightness(img).enhance(v)
    if op == 'Sharpness': return ImageEnhance.Sharpness(img).enhance(v)
    if op == 'ShearX': return img.transform(img.size, Image.AFFINE, (1, v, 0, 0, 1, 0))
    if op == 'ShearY': return img.transform(img.size, Image.AFFINE, (1, 0, 0, v, 1, 0))
    if op == 'TranslateX': return img.transform(img.size, Image.AFFINE, (1, 0, v * img.size[0], 0, 1, 0))
    if op == 'TranslateY': return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, v * img.size[1]))
    if op == 'Posterize': return ImageOps.posterize(img, max(1, int(v)))
    raise ValueError(op)

def hue(img, factor):
    # torchvision's PIL adjust_hue without torchvision: 8-bit HSV, H += trunc(f*255) mod 256.
    if img.mode == 'L': return img
    h, s, v = img.convert('HSV').split()
    nh = (np.asarray(h).astype(np.int64) + int(np.trunc(factor * 255))) % 256
    return Image.merge('HSV', (Image.fromarray(nh.astype(np.uint8), 'L'), s, v)).convert('RGB')

def simclr(img, p, size):
    t, l, h, w = p['box']
    img = img.crop((l, t, l + w, t + h)).resize((size, size), Image.BILINEAR)
    if p['flip']: img = img.transpose(Image.FLIP_LEFT_RIGHT)
    j = p['jitter']
    if j is not None:
        for k in j['order']:
            if k == 0: img = ImageEnhance.Brightness(img).enhance(j['b'])
            elif k == 1: img = ImageEnhance.Contrast(img).enhance(j['c'])
            elif k == 2: img = ImageEnhance.Color(img).enhance(j['s'])
            else: img = hue(img, j['h'])
    if p['gray'] and img.mode == 'RGB':
        g = np.asarray(img.convert('L'))
        img = Image.fromarray(np.dstack([g, g, g]), 'RGB')
    return img

def strong(img, p, size, c, mean, std):
    if p['flip']: img = img.transpose(Image.FLIP_LEFT_RIGHT)
    t, l = p['crop']
    img = img.crop((l, t, l + size, t + size))
    for op, v in p['ops']:
        img = strong_op(img, op, v)
    x = from_pil(img, c).astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    y1, y2, x1, x2 = p['cut']
    x[y1:y2, x1:x2, :] = 0
    return np.ascontiguousarray(x.transpose(2, 0, 1))

def normalize(img, c, mean, std):
    # ToTensor + Normalize in float32, channels first.
    x = from_pil(img, c).astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))

def view(img, case, i, c):
    # One training view as the reference builds it for an augmentation setting: `none` (the
    # validation transform), `simclr` (§3) or `strong` (§7), each normalised.
    kind, mean, std = case['view'], case['mean'], case['std']
    if kind == 'none': return normalize(img, c, mean, std)
    if kind == 'simclr': return normalize(simclr(img, case['params'][i], case['size']), c, mean, std)
    return strong(img, case['params'][i], case['size'], c, mean, std)

# -- jobs (the strength oracle reuses the functions above, not this part) --
spec = json.load(open(sys.argv[1]))
for job in spec['jobs']:
    n, h, w, c = job['shape']
    imgs = np.fromfile(job['input'], dtype=np.uint8).reshape(n, h, w, c)
    outs = []
    for case in job['cases']:
        for i in range(n):
            im = to_pil(imgs[i])
            if job['kind'] == 'op':
                outs.append(from_pil(strong_op(im, case['op'], case['v']), c))
            elif job['kind'] == 'simclr':
                outs.append(from_pil(simclr(im, case['params'][i], case['size']), c))
            elif job['kind'] == 'view':
                outs.append(view(im, case, i, c))
            else:
                outs.append(strong(im, case['params'][i], case['size'], c, case['mean'], case['std']))
    np.concatenate([o.ravel() for o in outs]).tofile(job['output'])
