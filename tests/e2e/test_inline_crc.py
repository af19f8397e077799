"""test_inline_crc.py - an object of at most one 64 KiB block keeps its CRC32C inside its object record, not in a
"blocksums" record (common/blocksum.h, docs/storage.md "Block checksums"): a GET of it reads one record, as before
checksums. Its CRC still catches damage (503), and a store written before inline CRCs, whose small objects have a
"blocksums" record, still verifies them.

The LMDB tables are read with lmdb-utils (mdb_stat, mdb_dump) and written with mdb_load, as test_upgrade.py does; the
damage goes through another file descriptor into the image (harness/damage.py)."""

import os
import re
import struct
import subprocess

from harness.comio import expect_error
from harness.damage import damage, find_extent

BLOCK = 64 * 1024


def table_entries(meta_dir, table):
    r = subprocess.run(["mdb_stat", "-s", table, str(meta_dir)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    m = re.search(r"Entries: (\d+)", r.stdout)
    assert m, r.stdout
    return int(m.group(1))


def escape(data):
    return "".join("\\%02x" % x for x in data)


def object_record(meta_dir, bucket, key):
    # mdb_dump's hex form, not -p: lmdb-utils 0.9.24 prints a backslash byte unescaped in -p's printable form, so a
    # record with one followed by two hex digits read back wrong
    r = subprocess.run(["mdb_dump", "-s", "objects", str(meta_dir)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("HEADER=END\n", 1)[1].splitlines()
    want = bucket.encode() + b"\0" + key.encode()
    for i in range(0, len(lines) - 1, 2):
        if bytes.fromhex(lines[i][1:]) == want:
            return bytes.fromhex(lines[i + 1][1:])
    raise AssertionError("no object record for %s/%s" % (bucket, key))


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c ^= b
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF


def test_small_objects_have_their_crc_inline_and_it_catches_damage(make_server):
    srv = make_server()
    c = srv.client()
    meta_dir = srv.workdir / "store.img.meta"
    small, one_block, two = os.urandom(3000), os.urandom(BLOCK), os.urandom(BLOCK + 1)
    for k, d in (("small", small), ("block", one_block), ("two", two), ("empty", b"")):
        assert c.put("bkt", k, d).status == 200
    m = c.metrics()
    assert m.value("comio_checksum_objects_unverified") == 0  # the inline ones count as verified objects
    for k, d in (("small", small), ("block", one_block), ("two", two), ("empty", b"")):
        assert c.get("bkt", k).body == d
    srv.stop()
    # only the object of two blocks has a "blocksums" record; the others carry their CRC in their object record
    assert table_entries(meta_dir, "blocksums") == 1
    rec = object_record(meta_dir, "bkt", "small")
    assert rec[0] & 0x80 and struct.unpack(">I", rec[-4:])[0] == crc32c(small)
    assert not object_record(meta_dir, "bkt", "two")[0] & 0x80
    srv.start()
    c = srv.client()

    # the inline CRC catches a flipped bit: whole GET and any range of the block are refused, no byte served
    damage(srv.storage, find_extent(srv.storage, small) + 1234)
    damage(srv.storage, find_extent(srv.storage, one_block) + BLOCK - 1)
    r = c.get("bkt", "small")
    expect_error(r, 503, "DataDamaged")
    assert c.get("bkt", "small", {"Range": "bytes=0-9"}).status == 503
    expect_error(c.get("bkt", "block"), 503, "DataDamaged")
    assert c.metrics().value("comio_checksum_mismatches_total", path="get") >= 3
    assert c.get("bkt", "two").body == two  # the others are untouched


def test_small_object_record_written_before_inline_crcs_still_verifies(make_server):
    """A store of format 5 written before inline CRCs: a small object with a "blocksums" record (format 1, its
    version, origin, extent and size, one CRC) and none in its object record. Made here by writing the object with
    checksums off and then the record the old way with mdb_load."""
    srv = make_server(config="storage:\n  checksums: false\n")
    c = srv.client()
    data = os.urandom(5000)
    assert c.put("bkt", "old", data).status == 200
    srv.stop()
    meta_dir = srv.workdir / "store.img.meta"
    rec = object_record(meta_dir, "bkt", "old")
    assert not rec[0] & 0x80
    version, off, _alen, size = struct.unpack(">QQQQ", rec[1:33])
    ctype_len = struct.unpack(">H", rec[57:59])[0]
    olen = rec[59 + ctype_len]
    origin = rec[60 + ctype_len:60 + ctype_len + olen]
    assert size == len(data)
    sums = bytes([1, 16]) + struct.pack(">QB", version, olen) + origin + struct.pack(">QQI", off, size, crc32c(data))
    r = subprocess.run(["mdb_load", "-T", "-s", "blocksums", str(meta_dir)],
                       input="%s\n%s\n" % (escape(b"bkt\0old"), escape(sums)), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    srv.config_path.write_text("")  # checksums on (the default)
    srv.start()
    c = srv.client()
    m = c.metrics()
    assert m.value("comio_checksum_objects_unverified") == 0
    before = m.value("comio_checksum_blocks_verified_total")
    assert c.get("bkt", "old").body == data
    assert c.metrics().value("comio_checksum_blocks_verified_total") - before == 1  # verified by the old record
    damage(srv.storage, find_extent(srv.storage, data) + 10)
    expect_error(c.get("bkt", "old"), 503, "DataDamaged")
    # rewritten: its CRC goes inline and the old record goes
    fresh = os.urandom(5000)
    assert c.put("bkt", "old", fresh).status == 200
    assert c.get("bkt", "old").body == fresh
    srv.stop()
    assert table_entries(meta_dir, "blocksums") == 0
    assert object_record(meta_dir, "bkt", "old")[0] & 0x80
