/* bwlimit.h - per-target bandwidth limits, shared by repld and storaged.
 *
 * A target's `bandwidth_limit` caps everything this site sends it: repld's
 * batches (every worker) and the large objects the target fetches from this
 * site's storaged. The two daemons are two processes, so the limiter lives in
 * a small file both map (BWLIMIT_FILE in the metadata directory): one slot
 * per target name, each holding the limit in force and a pacing clock
 * updated with atomics. Whoever sends n bytes to a target first takes them
 * from its slot (bwlimit_take) and waits what it is told. Any other sender to
 * a target (a resync, say) does the same with the same slot: the limit is then
 * shared with it too.
 *
 * Pacing: each slot keeps the time at which all bytes taken so far have left
 * at the limit (CLOCK_MONOTONIC, the same clock in every process). Taking n
 * bytes pushes it n / limit later and tells the caller to wait until it is
 * no more than BWLIMIT_BURST_MS ahead of now. After a quiet spell a sender
 * may so send at most BWLIMIT_BURST_MS worth of the limit (at least one
 * take) at once; over any longer span the rate is the limit.
 *
 * The limit itself is in the file too: the daemon that loaded the config
 * last (at start or on SIGHUP, bwlimit_apply) sets it for both. */
#ifndef COMIO_BWLIMIT_H
#define COMIO_BWLIMIT_H

#include <stddef.h>
#include <stdint.h>
#include "common/conf.h"
#include "common/err.h"

#define BWLIMIT_FILE "bandwidth"
#define BWLIMIT_BURST_MS 50       /* the burst a slot allows after a quiet spell, in time at its limit */
#define BWLIMIT_SLOTS 128         /* target names a file holds over its life */
#define BWLIMIT_CHUNK (64 * 1024) /* what a sender takes at a time: it bounds a burst beyond BWLIMIT_BURST_MS */

typedef struct bwlimit bwlimit_t;

/* Maps (creating it when missing) BWLIMIT_FILE in `dir` (the metadata
 * directory, conf->meta_path), claims a slot for each of conf's targets by
 * name and sets each slot's limit from conf (bwlimit_apply). conf is only
 * read during the call. Returns 0 with *out set (free with bwlimit_close),
 * CIO_ENOMEM or CIO_ESYS (the file cannot be opened, sized or mapped:
 * logged). A target that finds no free slot (more than BWLIMIT_SLOTS distinct
 * names ever used with this metadata) is logged and left unlimited. */
int bwlimit_open(bwlimit_t **out, const char *dir, const conf_t *conf) CIO_MUST_CHECK;

/* Sets the limit of every target of conf's (by name) to its bandwidth_limit.
 * A target missing from the file (not claimed at open) is skipped. */
void bwlimit_apply(bwlimit_t *b, const conf_t *conf);

/* Reads the config file `running` was loaded from again (running->config_path)
 * and applies its targets' bandwidth_limit (bwlimit_apply); nothing else of
 * it is used. Logs what changed, or why nothing did (a config error names
 * file, line and key; the limits in force stay). For SIGHUP. */
void bwlimit_reload(bwlimit_t *b, const conf_t *running);

/* The slot of target `name`, or -1 when it has none. */
int bwlimit_slot(const bwlimit_t *b, const char *name);

/* Takes n bytes from slot `slot` (-1: no limit) and returns how many
 * nanoseconds the caller must wait before it sends them (0: at once). Any
 * thread of either process; lock-free. n should be at most BWLIMIT_CHUNK. */
uint64_t bwlimit_take(bwlimit_t *b, int slot, size_t n);

/* Like bwlimit_take, then sleeps that long. */
void bwlimit_pace(bwlimit_t *b, int slot, size_t n);

/* The limit in force for slot (bytes/s, 0: none), and the bytes taken from it
 * by both processes since the file was made (a counter, for measured rates). */
uint64_t bwlimit_limit(const bwlimit_t *b, int slot);
uint64_t bwlimit_bytes(const bwlimit_t *b, int slot);

/* Unmaps the file. NULL is a no-op. */
void bwlimit_close(bwlimit_t *b);

#endif
