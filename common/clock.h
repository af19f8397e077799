/* clock.h - reading the clocks: the wall clock (CLOCK_REALTIME) for instants
 * that are stored or shown, the monotonic clock (CLOCK_MONOTONIC) for
 * intervals, timeouts and deadlines.
 *
 * One name, one clock: a `clock_wall_*` value is milliseconds since the Unix
 * epoch and may jump (NTP, an operator); a `clock_mono_*` value only means
 * something compared with another from the same boot and never goes back.
 * Never mix the two in one subtraction. */
#ifndef COMIO_CLOCK_H
#define COMIO_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch, by the wall clock: mtimes, log
 * timestamps, "last replication", presigned URL expiries. */
int64_t clock_wall_ms(void);

/* Milliseconds on the monotonic clock: timeouts, backoff, rate limits. */
int64_t clock_mono_ms(void);

/* Microseconds on the monotonic clock: round-trip times. */
int64_t clock_mono_us(void);

/* The absolute CLOCK_REALTIME instant `ms` milliseconds from now (ms >= 0),
 * for pthread_cond_timedwait on a condition variable with the default clock. */
struct timespec clock_wall_after(int64_t ms);

#endif
