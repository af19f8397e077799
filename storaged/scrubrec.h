/* scrubrec.h - the scrub's two records (storaged/scrub.h): its state in the
 * "scrub" table and a damaged object in the "damaged" table; their encoding
 * and strict, bounded decoding (tests/fuzz/fuzz_scrubrec.c). No I/O, no
 * logging; thread-safe. docs/storage.md describes both. */
#ifndef COMIO_STORAGED_SCRUBREC_H
#define COMIO_STORAGED_SCRUBREC_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"
#include "proto/logrec.h"

#define SCRUBREC_FORMAT 1
#define SCRUBREC_POS_MAX 480 /* an objkey: META_OBJKEY_MAX (common/meta.h) */

/* The counters of one pass. */
typedef struct {
    uint64_t pass;      /* its number, from 1 */
    int64_t started_ms; /* wall clock */
    int64_t ended_ms;   /* 0 while it runs */
    uint64_t objects;   /* objects done (verified, filled in, damaged or skipped) */
    uint64_t bytes;     /* their bytes read */
    uint64_t damaged;   /* objects found damaged */
    uint64_t filled;    /* objects without checksums given theirs (their MD5 matched) */
    uint64_t skipped;   /* objects rewritten or deleted while being read, or whose read failed */
    uint64_t repaired;  /* of the damaged, those repaired from a peer (storaged/repair.h); in the record's trailer */
} scrub_pass_t;

/* The last kept loser done: a "conflicts" table key (CONFLICT_POS_MAX of
 * common/conflict.h, which storaged/scrub.c ties to it). */
#define SCRUBREC_LPOS_MAX (LOGREC_BUCKET_MAX + 1 + 16 + 8 + LOGREC_ORIGIN_MAX)

/* The state: format byte, running (u8, 0 or 1), the current and the last
 * finished pass (8 u64 BE each, in scrub_pass_t's order but `repaired`), the
 * position (u16 BE length <= SCRUBREC_POS_MAX, the last objkey done), then a
 * trailer: the current and the last pass's `repaired` (u64 BE each). A
 * record without the trailer (written before it) decodes with both 0.
 * While the pass walks the kept conflict losers (after the objects), the
 * trailer is followed by the losers' walk: u8 1, then its position (u16 BE
 * length <= SCRUBREC_LPOS_MAX, the last loser's table key done; 0: none
 * yet). A record without it is in the objects' walk. */
typedef struct {
    int running;
    scrub_pass_t cur, last;
    uint8_t pos[SCRUBREC_POS_MAX];
    size_t pos_len;
    int losers; /* 1: the objects are done, the pass walks the kept losers from after lpos */
    uint8_t lpos[SCRUBREC_LPOS_MAX];
    size_t lpos_len; /* 0 when !losers */
} scrubrec_state_t;

#define SCRUBREC_STATE_FIXED (1 + 1 + 8 * 8 + 8 * 8 + 2) /* without the position and the trailer */
#define SCRUBREC_STATE_TRAILER (8 + 8)
#define SCRUBREC_STATE_LOSERS (1 + 2) /* the losers' walk, without its position */
#define SCRUBREC_STATE_MAX                                                                                                         \
    (SCRUBREC_STATE_FIXED + SCRUBREC_POS_MAX + SCRUBREC_STATE_TRAILER + SCRUBREC_STATE_LOSERS + SCRUBREC_LPOS_MAX)

/* Encodes s (pos_len <= SCRUBREC_POS_MAX, lpos_len <= SCRUBREC_LPOS_MAX),
 * trailer included, and the losers' walk when s->losers, into out
 * (SCRUBREC_STATE_MAX bytes); returns the length. */
size_t scrubrec_state_encode(uint8_t *out, const scrubrec_state_t *s);

/* Decodes p[0..len) into *s. 0 or CIO_EPROTO (a length that does not add up, another format, running not 0 or 1, a
 * losers' walk marked other than 1). */
int scrubrec_state_decode(const void *p, size_t len, scrubrec_state_t *s) CIO_MUST_CHECK;

/* A damaged object: format byte, version, first bad block (UINT64_MAX:
 * unknown, the MD5 failed), when found in ms (u64 BE each), origin (u8
 * length <= LOGREC_ORIGIN_MAX), bucket (u8 length <= LOGREC_BUCKET_MAX),
 * key (u16 BE length <= LOGREC_KEY_MAX). Decoded, the strings point into the
 * decoded bytes (not NUL-terminated) and live as long as they do. */
typedef struct {
    uint64_t version, block;
    int64_t found_ms;
    const char *origin, *bucket, *key;
    size_t origin_len, blen, klen;
} scrubrec_damaged_t;

#define SCRUBREC_DAMAGED_MAX (1 + 8 * 3 + 1 + LOGREC_ORIGIN_MAX + 1 + LOGREC_BUCKET_MAX + 2 + LOGREC_KEY_MAX)

/* Encodes d into out (SCRUBREC_DAMAGED_MAX bytes); returns the length, or 0
 * for a string longer than its maximum. */
size_t scrubrec_damaged_encode(uint8_t *out, const scrubrec_damaged_t *d);

/* Decodes p[0..len) into *d. 0 or CIO_EPROTO. */
int scrubrec_damaged_decode(const void *p, size_t len, scrubrec_damaged_t *d) CIO_MUST_CHECK;

/* A quarantined extent (storaged/quarantine.h): u64 BE length, then the
 * damaged object it held as a damaged record (above); decoded, `object`'s
 * strings point into the decoded bytes. */
typedef struct {
    uint64_t len;
    scrubrec_damaged_t object;
} scrubrec_quarantine_t;

#define SCRUBREC_QUARANTINE_MAX (8 + SCRUBREC_DAMAGED_MAX)

/* Encodes q into out (SCRUBREC_QUARANTINE_MAX bytes); returns the length, or 0 as scrubrec_damaged_encode. */
size_t scrubrec_quarantine_encode(uint8_t *out, const scrubrec_quarantine_t *q);

/* Decodes p[0..len) into *q. 0 or CIO_EPROTO. */
int scrubrec_quarantine_decode(const void *p, size_t len, scrubrec_quarantine_t *q) CIO_MUST_CHECK;

#endif
