/* integrity.c - verified reads of object bytes, and the reporting of damage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/clock.h"
#include "common/log.h"
#include "storaged/integrity.h"

static uint64_t blocks_verified;              /* atomic */
static uint64_t mismatches[INTEGRITY_NPATHS]; /* atomic */

#define RECENT_MAX 64
static uint64_t recent[RECENT_MAX];   /* hashes of what was logged last, a ring; atomic slots */
static int64_t recent_ms[RECENT_MAX]; /* when each was logged (monotonic); atomic slots */
static unsigned recent_next;          /* atomic */

int integrity_sums(meta_t *m, MDB_txn *txn, const char *b, size_t blen, const char *k, size_t klen, const meta_obj_t *o,
                   uint64_t off, uint64_t len, blocksum_view_t *v, uint8_t **owned, int *have)
{
    int ret;

    *have = 0;
    *owned = NULL;
    memset(v, 0, sizeof(*v));
    if (meta_sums_view(m, txn, b, blen, k, klen, o, off, len, v) != 0)
        return 0; /* none, or another object's: unverified (CIO_EPROTO is logged by meta_sums_get) */
    if ((ret = blocksum_view_copy(v, owned)) != 0) /* an inline CRC is in *v already: no copy */
        return ret;
    *have = 1;
    return 0;
}

int integrity_read(store_t *s, uint64_t ext_off, uint64_t roff, void *buf, size_t len, const blocksum_view_t *v,
                   uint64_t *bad_block)
{
    int ret;

    if ((ret = store_read(s, ext_off + roff, buf, len)) != 0 || v == NULL)
        return ret;
    ret = blocksum_verify(v, roff, buf, len, bad_block);
    if (ret == CIO_EIO)
        return CIO_ECORRUPT;
    if (ret == 0)
        integrity_count_verified(blocksum_nblocks(len, v->shift));
    return ret;
}

int integrity_read_all(store_t *s, uint64_t ext_off, uint64_t size, const blocksum_view_t *v, void *chunk, size_t chunk_len,
                       uint64_t *bad_block)
{
    uint64_t done = 0;
    int ret = 0;

    while (ret == 0 && done < size) {
        size_t n = size - done < chunk_len ? (size_t)(size - done) : chunk_len;
        ret = integrity_read(s, ext_off, done, chunk, n, v, bad_block);
        done += n;
    }
    return ret;
}

/* FNV-1a over what is logged and the damage's identity. */
static uint64_t damage_hash(const char *tag, const char *b, const char *k, uint64_t version, const char *origin, uint64_t block)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const char *parts[4] = {tag, b, k, origin};
    for (int i = 0; i < 4; i++)
        for (const char *p = parts[i];; p++) {
            h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
            if (*p == '\0')
                break;
        }
    h = (h ^ version) * 0x100000001b3ull;
    return (h ^ block) * 0x100000001b3ull;
}

int integrity_recent(const char *tag, const char *b, const char *k, uint64_t version, const char *origin, uint64_t block)
{
    uint64_t h = damage_hash(tag, b, k, version, origin, block);
    int64_t now = clock_mono_ms();

    /* racing threads may both log once: a table for logs, not a lock */
    for (unsigned i = 0; i < RECENT_MAX; i++)
        if (__atomic_load_n(&recent[i], __ATOMIC_RELAXED) == h &&
            now - __atomic_load_n(&recent_ms[i], __ATOMIC_RELAXED) < INTEGRITY_RECENT_MS)
            return 1;
    unsigned slot = __atomic_fetch_add(&recent_next, 1, __ATOMIC_RELAXED) % RECENT_MAX;
    __atomic_store_n(&recent_ms[slot], now, __ATOMIC_RELAXED);
    __atomic_store_n(&recent[slot], h, __ATOMIC_RELAXED);
    return 0;
}

void integrity_damaged(integrity_path_t path, const char *b, const char *k, uint64_t version, const char *origin, uint64_t block)
{
    char vs[24], bs[24];

    __atomic_add_fetch(&mismatches[path], 1, __ATOMIC_RELAXED);
    if (integrity_recent("damaged", b, k, version, origin, block))
        return; /* logged already */
    snprintf(vs, sizeof(vs), "%" PRIu64, version);
    if (block == UINT64_MAX) /* the whole object's MD5 failed (bytes received, or an object without checksums): no block */
        snprintf(bs, sizeof(bs), "unknown");
    else
        snprintf(bs, sizeof(bs), "%" PRIu64, block);
    log_msg(LOG_LVL_ERROR,
            path == INTEGRITY_APPLY   ? "object data damaged: the bytes received do not match the event's ETag, not applied"
            : path == INTEGRITY_SCRUB ? "object data damaged: found by the scrub"
                                      : "object data damaged: a block does not match its checksum, the read failed",
            "path", integrity_path_name(path), "bucket", b, "key", k, "version", vs, "origin", origin, "block", bs, NULL);
}

void integrity_count_verified(uint64_t blocks)
{
    __atomic_add_fetch(&blocks_verified, blocks, __ATOMIC_RELAXED);
}

void integrity_stats(integrity_stats_t *out)
{
    out->verified = __atomic_load_n(&blocks_verified, __ATOMIC_RELAXED);
    for (int i = 0; i < INTEGRITY_NPATHS; i++)
        out->mismatches[i] = __atomic_load_n(&mismatches[i], __ATOMIC_RELAXED);
}

const char *integrity_path_name(integrity_path_t path)
{
    return path == INTEGRITY_APPLY ? "apply" : path == INTEGRITY_SCRUB ? "scrub" : "get";
}
