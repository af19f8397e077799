/* hlc.h - the hybrid logical clock: versions that every site orders the same way.
 *
 * A version is one 64-bit hybrid logical clock timestamp:
 *
 *   bit 63 ............ 16 15 ....... 0
 *   | wall milliseconds   | counter    |
 *
 * the high 48 bits are milliseconds since the Unix epoch (enough until the
 * year 10889), the low 16 bits a logical counter that orders events within
 * one millisecond. Compared as plain integers, versions order by time, then
 * by counter. When the counter would overflow within one millisecond the
 * clock borrows the next millisecond (the integer simply carries), so it
 * stays strictly monotonic and runs ahead of the wall clock by at most the
 * borrowed milliseconds.
 *
 * A version names a mutation together with the id of the site that made it:
 * (version, site id) is a total order (hlc_version_cmp), the one that
 * last-writer-wins uses on every site.
 *
 * Rules (Kulkarni et al., "Logical Physical Clocks", 2014):
 *   - hlc_now (a local event, or a send): the result is strictly greater than
 *     every version the clock returned or received, and its milliseconds are
 *     >= the physical clock's.
 *   - hlc_update (a receive): the clock advances past a remote version, so a
 *     version taken after it orders after it.
 * The physical clock may step back (NTP, an operator): versions still only
 * grow, and keep the largest milliseconds seen until the wall clock passes them.
 *
 * Thread safety: every function may be called from any thread at once (the
 * state is atomic); hlc_init and hlc_destroy are not concurrent with others. */
#ifndef COMIO_COMMON_HLC_H
#define COMIO_COMMON_HLC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

#define HLC_COUNTER_BITS 16
#define HLC_COUNTER_MAX ((UINT64_C(1) << HLC_COUNTER_BITS) - 1)
#define HLC_MS_MAX ((UINT64_C(1) << (64 - HLC_COUNTER_BITS)) - 1) /* the last millisecond a version can hold */
#define HLC_MAX_CLOCK_SKEW_MS_DEFAULT 60000                       /* replication.max_clock_skew's default */

/* The version of millisecond `ms` (at most HLC_MS_MAX) and counter `counter`. */
static inline uint64_t hlc_make(uint64_t ms, uint16_t counter)
{
    return ms << HLC_COUNTER_BITS | counter;
}

/* The milliseconds since the Unix epoch of version v. */
static inline uint64_t hlc_ms(uint64_t v)
{
    return v >> HLC_COUNTER_BITS;
}

/* The logical counter of version v. */
static inline uint16_t hlc_counter(uint64_t v)
{
    return (uint16_t)(v & HLC_COUNTER_MAX);
}

/* The physical clock: milliseconds since the Unix epoch (common/clock.h's
 * clock_wall_ms, or a test's). May go back and forth. */
typedef int64_t (*hlc_wall_fn)(void);

typedef struct {
    _Atomic uint64_t last;        /* the largest version returned or received */
    _Atomic uint64_t skew_events; /* remote versions received too far ahead (hlc_update) */
    hlc_wall_fn wall_ms;          /* set by hlc_init */
    int64_t max_skew_ms;          /* set by hlc_init */
} hlc_t;

/* Starts clock c at version `last` (0 for none, or the largest version a
 * site has stored, so that a restart never reuses one). `wall_ms` is the
 * physical clock, NULL for clock_wall_ms. `max_skew_ms` is how far ahead of
 * the physical clock a remote version may be before hlc_update counts it;
 * <= 0 for HLC_MAX_CLOCK_SKEW_MS_DEFAULT. */
void hlc_init(hlc_t *c, uint64_t last, hlc_wall_fn wall_ms, int64_t max_skew_ms);

/* A new version for a local event into *out: strictly greater than every
 * version c returned or received, with milliseconds >= the physical clock's
 * (a physical clock before the epoch counts as 0, one past HLC_MS_MAX as
 * HLC_MS_MAX). Returns 0, or CIO_ETOOBIG when the clock already holds the
 * largest version (UINT64_MAX, which only a remote version from after the
 * year 10889 can bring); *out is then unchanged. */
int hlc_now(hlc_t *c, uint64_t *out) CIO_MUST_CHECK;

/* The receive rule: advances c past the remote version `remote`, so that
 * every later hlc_now orders after it. The version is always taken, however
 * far ahead: refusing it would hold replication back for ever. Never fails.
 * Returns 1 when `remote` is more than max_skew_ms milliseconds ahead of the
 * physical clock (exactly max_skew_ms is not), and then counts it in
 * c->skew_events (hlc_skew_events); 0 otherwise. */
int hlc_update(hlc_t *c, uint64_t remote);

/* The largest version c returned or received (for status; a snapshot). */
uint64_t hlc_last(hlc_t *c);

/* How many remote versions hlc_update found too far ahead, ever. */
uint64_t hlc_skew_events(hlc_t *c);

/* Nothing to release today; pairs with hlc_init. */
void hlc_destroy(hlc_t *c);

/* The last-writer-wins order of two mutations: (a_hlc, a_site) against
 * (b_hlc, b_site). Versions compare as integers; equal versions are broken
 * by the origin site ids, compared byte by byte, a prefix first. The site
 * ids are borrowed for the call and need no NUL. Returns <0, 0 or >0 as a
 * sorts before, equal to or after b: a total order, the same on every site.
 * Two sites never take the same version with the same id, so 0 means "the
 * same mutation". */
int hlc_version_cmp(uint64_t a_hlc, const char *a_site, size_t a_site_len, uint64_t b_hlc, const char *b_site, size_t b_site_len);

#endif
