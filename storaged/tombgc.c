/* tombgc.c - the collection of expired tombstones and conflict losers, a small slice per commit round. */
#include <inttypes.h>
#include <stdio.h>
#include "storaged/commit_int.h"

#define GC_INTERVAL_MS 60000 /* a collection pass starts at most this often, */
#define GC_INTERVAL_MIN_MS                                                                                                         \
    1000             /* or once per TTL when that is shorter (short TTLs are for tests), but not more often than this              \
                      */
#define GC_SLICE 256 /* records looked at per round: keeps each transaction short */

int tombgc_due(commit_t *c, int64_t now)
{
    return (__atomic_load_n(&c->tomb_ttl_ms, __ATOMIC_RELAXED) != 0 ||
            __atomic_load_n(&c->conflict_ttl_ms, __ATOMIC_RELAXED) != 0) &&
           (c->gc_running || now >= c->gc_next_ms);
}

static int release_extent(void *arg, alloc_extent_t ext)
{
    void **a = arg;
    return ext.len > 0 ? reuse_quarantine_add(a[0], a[1], ext) : 0;
}

/* One slice of tombstones, raising the site's tombstone horizon (the
 * largest version collected) in the same transaction: a full sync reads it
 * to tell a key deleted here, whose tombstone is gone, from one never held
 * (docs/replication-apply.md, "Tombstone horizon"). */
static int tomb_slice(commit_t *c, MDB_txn *txn, int64_t cutoff_ms, uint64_t *removed, int *done)
{
    uint64_t horizon, newest = 0;
    int ret;
    if ((ret = meta_tomb_gc(c->meta, txn, c->gc_pos, &c->gc_pos_len, cutoff_ms, GC_SLICE, removed, &newest, done)) != 0)
        return ret;
    if (newest == 0)
        return 0;
    if ((ret = meta_state_get(c->meta, txn, META_TOMB_HORIZON, &horizon)) != 0)
        return ret;
    return newest > horizon ? meta_state_put(c->meta, txn, META_TOMB_HORIZON, newest) : 0;
}

/* One slice of a pass, in the round's transaction: tombstones first, then
 * conflict losers (their extents are freed like replaced objects'). Removing
 * either is no promise to anybody, so it needs no sync of its own. */
int tombgc_slice(commit_t *c, MDB_txn *txn, uint64_t *collected)
{
    uint64_t ttl = __atomic_load_n(&c->tomb_ttl_ms, __ATOMIC_RELAXED),
             cttl = __atomic_load_n(&c->conflict_ttl_ms, __ATOMIC_RELAXED);
    uint64_t removed = 0;
    int64_t now = clock_wall_ms();
    int ret, done = 0;

    *collected = 0;
    if (!tombgc_due(c, now))
        return 0;
    if (!c->gc_running) {
        c->gc_running = 1;
        uint64_t every = ttl != 0 && ttl < GC_INTERVAL_MS ? ttl : GC_INTERVAL_MS;
        c->gc_next_ms = now + (int64_t)(every < GC_INTERVAL_MIN_MS ? GC_INTERVAL_MIN_MS : every);
        c->gc_pos_len = 0;
        c->gc_removed = 0;
        c->gc_conflicts = 0;
        c->gc_cpos_len = 0;
    }
    if (!c->gc_conflicts) {
        if (ttl == 0 || now < 0 || ttl > (uint64_t)now)
            done = 1; /* nothing to collect, or nothing can be that old */
        else if ((ret = tomb_slice(c, txn, now - (int64_t)ttl, &removed, &done)) != 0) {
            c->gc_running = 0; /* give this pass up rather than fail every round */
            return ret;
        }
        c->gc_removed += removed;
        *collected = removed;
        if (done && c->gc_removed > 0) {
            char n[24];
            snprintf(n, sizeof(n), "%" PRIu64, c->gc_removed);
            log_msg(LOG_LVL_INFO, "expired tombstones collected", "count", n, NULL);
        }
        if (done) {
            c->gc_conflicts = 1; /* the second part, from the next slice on */
            c->gc_removed = 0;
        }
        return 0;
    }
    void *arg[2] = {c, txn};
    if (cttl == 0 || now < 0 || cttl > (uint64_t)now)
        done = 1;
    else if ((ret = conflict_expire(c->meta, txn, c->gc_cpos, &c->gc_cpos_len, now - (int64_t)cttl, GC_SLICE, release_extent, arg,
                                    &removed, &done)) != 0) {
        c->gc_running = 0;
        return ret;
    }
    c->gc_removed += removed;
    *collected = removed;
    if (done) {
        c->gc_running = 0;
        if (c->gc_removed > 0) {
            char n[24];
            snprintf(n, sizeof(n), "%" PRIu64, c->gc_removed);
            log_msg(LOG_LVL_INFO, "expired conflict losers collected", "count", n, NULL);
        }
    }
    return 0;
}
