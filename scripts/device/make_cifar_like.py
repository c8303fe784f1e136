"""Write a CIFAR-10-format archive (cifar-10-binary.tar.gz, the official binary layout: records of
one label byte + 3072 bytes R, G, B planes of 32x32) from Fashion-MNIST: each 28x28 image is padded
to 32x32 with zeros and copied to the three channels. 50 000 train images in five batches, 10 000
test images. Used by scripts/device-check.sh to time training on CIFAR-sized images.

Usage: make_cifar_like.py FASHION_MNIST_DIR OUT_DIR"""
import gzip, io, os, sys, tarfile

import numpy as np


def load(dir, prefix):
    with gzip.open(os.path.join(dir, f"{prefix}-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(dir, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x, y


def records(x, y):
    pad = np.zeros((len(x), 32, 32), np.uint8)
    pad[:, 2:30, 2:30] = x
    planes = np.repeat(pad[:, None], 3, axis=1).reshape(len(x), 3072)
    return np.concatenate([y[:, None], planes], axis=1).tobytes()


def main():
    src, out = sys.argv[1], sys.argv[2]
    xtr, ytr = load(src, "train")
    xte, yte = load(src, "t10k")
    os.makedirs(out, exist_ok=True)
    files = {f"data_batch_{i + 1}.bin": records(xtr[i * 10000:(i + 1) * 10000], ytr[i * 10000:(i + 1) * 10000]) for i in range(5)}
    files["test_batch.bin"] = records(xte, yte)
    files["batches.meta.txt"] = "\n".join(["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]).encode() + b"\n"
    with tarfile.open(os.path.join(out, "cifar-10-binary.tar.gz"), "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
