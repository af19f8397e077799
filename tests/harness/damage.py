"""damage.py - damage written into a site's data store behind storaged's back.

storaged reads its store with pread through the page cache, so bytes changed
through another file descriptor are what its next read sees. An object's
extent is found by its bytes, which a test makes random and so unique."""

import os


def find_extent(image, data):
    """The offset of data's bytes in the store image (random bytes: found once)."""
    probe = data[:4096]
    with open(image, "rb") as f:
        blob = f.read()
    at = blob.find(probe)
    assert at >= 0, "object bytes not found in the image"
    assert blob.find(probe, at + 1) < 0, "object bytes found twice in the image"
    assert blob[at:at + len(data)] == data
    return at


def damage(image, off, flip=0x01):
    """Flips bits of one byte at `off` in the image, synced."""
    with open(image, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ flip]))
        f.flush()
        os.fsync(f.fileno())
