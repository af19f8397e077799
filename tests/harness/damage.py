"""damage.py - finding an object's extent in a store image and damaging its bytes behind storaged's back.

storaged reads with pread through the page cache, so a write through another file descriptor is what its next
read sees. An object's extent is found by its bytes, which the tests make random and unique."""

import os


def find_extent(image, data):
    """The offset of data's bytes in the store image (they are random: found once)."""
    probe = data[:4096]
    with open(image, "rb") as f:
        blob = f.read()
    at = blob.find(probe)
    assert at >= 0, "object bytes not found in the image"
    assert blob.find(probe, at + 1) < 0, "object bytes found twice in the image"
    assert blob[at:at + len(data)] == data
    return at


def damage(image, off, flip=0x01):
    """Flips bits of one byte at `off` in the image (another fd: the page cache is shared)."""
    with open(image, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ flip]))
        f.flush()
        os.fsync(f.fileno())


def zero(image, off, length):
    """Writes `length` zero bytes at `off` in the image (a block lost rather than a bit rotted)."""
    with open(image, "r+b") as f:
        f.seek(off)
        f.write(bytes(length))
        f.flush()
        os.fsync(f.fileno())


def read_at(image, off, length):
    """The image's bytes [off, off + length)."""
    with open(image, "rb") as f:
        f.seek(off)
        return f.read(length)


def find_all(image, data):
    """Every offset where data's first 4 KiB are in the image: an object's extent, and the
    quarantined extent it had before a repair (whose bytes are the same but for the damage)."""
    probe = data[:4096]
    with open(image, "rb") as f:
        blob = f.read()
    out, at = [], blob.find(probe)
    while at >= 0:
        out.append(at)
        at = blob.find(probe, at + 1)
    return out


def find_whole(image, data):
    """Every offset where data's bytes lie whole in the image, in order. A multipart object's bytes can be there
    more than once: in its own extent and in the parts' extents, freed at Complete but not overwritten."""
    probe = data[:4096]
    with open(image, "rb") as f:
        blob = f.read()
    found, at = [], blob.find(probe)
    while at >= 0:
        if blob[at:at + len(data)] == data:
            found.append(at)
        at = blob.find(probe, at + 1)
    assert found, "object bytes not found in the image"
    return found
