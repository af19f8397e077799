/* bwlimit.c - per-target bandwidth limits in a file mapped by repld and storaged. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/bwlimit.h"
#include "common/log.h"

#define BWLIMIT_MAGIC 0x434f4d494f425731ULL /* "COMIOBW1": the layout below */
#define BWLIMIT_NAME_MAX 64                 /* CONF_TARGET_NAME_MAX and its NUL fit */

/* A slot: claimed once (state 0 -> 1 while the name is written -> 2), then
 * only its limit, pacing clock and byte counter change, each atomically. */
typedef struct {
    uint32_t state;
    uint32_t pad;
    char name[BWLIMIT_NAME_MAX];
    uint64_t limit; /* bytes/s, 0: none */
    int64_t due_ns; /* CLOCK_MONOTONIC: when every byte taken so far has left at the limit */
    uint64_t bytes; /* taken since the file was made */
    uint64_t spare[5];
} bwslot_t;

typedef struct {
    uint64_t magic;
    uint64_t spare[7];
    bwslot_t slot[BWLIMIT_SLOTS];
} bwfile_t;

struct bwlimit {
    bwfile_t *f;
};

_Static_assert(CONF_TARGET_NAME_MAX < BWLIMIT_NAME_MAX, "a target name fits a slot");

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The slot named `name`, claiming a free one when none is; -1 when full. */
static int claim(bwfile_t *f, const char *name)
{
    for (int i = 0; i < BWLIMIT_SLOTS; i++) {
        bwslot_t *s = &f->slot[i];
        uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (st == 0) {
            uint32_t zero = 0;
            if (__atomic_compare_exchange_n(&s->state, &zero, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                snprintf(s->name, sizeof(s->name), "%s", name);
                __atomic_store_n(&s->state, 2, __ATOMIC_RELEASE);
                return i;
            }
            st = zero;
        }
        while (st == 1) { /* the other process is writing the name: a few instructions */
            sched_yield();
            st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        }
        if (strncmp(s->name, name, sizeof(s->name)) == 0)
            return i;
    }
    return -1;
}

int bwlimit_open(bwlimit_t **out, const char *dir, const conf_t *conf)
{
    char path[4096];
    struct stat st;
    bwlimit_t *b;
    int fd;

    *out = NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, BWLIMIT_FILE) >= sizeof(path)) {
        log_msg(LOG_LVL_ERROR, "the bandwidth file's path is too long", "dir", dir, NULL);
        return CIO_ESYS;
    }
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return CIO_ENOMEM;
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 || fstat(fd, &st) != 0 ||
        (st.st_size < (off_t)sizeof(bwfile_t) && ftruncate(fd, sizeof(bwfile_t)) != 0)) {
        log_msg(LOG_LVL_ERROR, "cannot open the bandwidth file", "path", path, "error", strerror(errno), NULL);
        goto fail;
    }
    b->f = mmap(NULL, sizeof(bwfile_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (b->f == MAP_FAILED) {
        log_msg(LOG_LVL_ERROR, "cannot map the bandwidth file", "path", path, "error", strerror(errno), NULL);
        b->f = NULL;
        goto fail;
    }
    close(fd);
    uint64_t zero = 0;
    if (!__atomic_compare_exchange_n(&b->f->magic, &zero, BWLIMIT_MAGIC, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
        zero != BWLIMIT_MAGIC) {
        log_msg(LOG_LVL_ERROR, "the bandwidth file is not one this version writes; remove it while both daemons are stopped",
                "path", path, NULL);
        munmap(b->f, sizeof(bwfile_t));
        free(b);
        return CIO_ESYS;
    }
    for (size_t i = 0; i < conf->ntargets; i++)
        if (claim(b->f, conf->targets[i].name) < 0)
            log_msg(LOG_LVL_WARN, "no bandwidth slot left for this target: it is not limited", "target", conf->targets[i].name,
                    NULL);
    bwlimit_apply(b, conf);
    *out = b;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    free(b);
    return CIO_ESYS;
}

void bwlimit_apply(bwlimit_t *b, const conf_t *conf)
{
    for (size_t i = 0; i < conf->ntargets; i++) {
        int slot = bwlimit_slot(b, conf->targets[i].name);
        if (slot >= 0)
            __atomic_store_n(&b->f->slot[slot].limit, conf->targets[i].bandwidth_limit, __ATOMIC_RELAXED);
    }
}

void bwlimit_reload(bwlimit_t *b, const conf_t *running)
{
    char err[512];
    conf_t c;

    if (running->config_path == NULL) {
        log_msg(LOG_LVL_INFO, "no config file to reload: bandwidth limits unchanged", NULL);
        return;
    }
    if (conf_init(&c) != 0) {
        log_msg(LOG_LVL_ERROR, "config not reloaded: out of memory; bandwidth limits unchanged", NULL);
        return;
    }
    if (conf_load_file(&c, running->config_path, err, sizeof(err)) != 0 || conf_finalize(&c, 0, err, sizeof(err)) != 0) {
        log_msg(LOG_LVL_ERROR, "config not reloaded: bandwidth limits unchanged", "error", err, NULL);
        conf_free(&c);
        return;
    }
    for (size_t i = 0; i < c.ntargets; i++) {
        int slot = bwlimit_slot(b, c.targets[i].name);
        char was[24], now[24];
        if (slot < 0)
            continue; /* a new target needs a restart */
        uint64_t old = bwlimit_limit(b, slot);
        if (old == c.targets[i].bandwidth_limit)
            continue;
        snprintf(was, sizeof(was), "%" PRIu64, old);
        snprintf(now, sizeof(now), "%" PRIu64, c.targets[i].bandwidth_limit);
        log_msg(LOG_LVL_INFO, "bandwidth limit changed", "target", c.targets[i].name, "was_bytes_per_s", was, "bytes_per_s", now,
                NULL);
    }
    bwlimit_apply(b, &c);
    conf_free(&c);
}

int bwlimit_slot(const bwlimit_t *b, const char *name)
{
    if (b == NULL)
        return -1;
    for (int i = 0; i < BWLIMIT_SLOTS; i++) {
        const bwslot_t *s = &b->f->slot[i];
        uint32_t st = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
        if (st == 0)
            return -1;
        if (st == 2 && strncmp(s->name, name, sizeof(s->name)) == 0)
            return i;
    }
    return -1;
}

uint64_t bwlimit_take(bwlimit_t *b, int slot, size_t n)
{
    if (b == NULL || slot < 0)
        return 0;
    bwslot_t *s = &b->f->slot[slot];
    __atomic_add_fetch(&s->bytes, n, __ATOMIC_RELAXED);
    uint64_t limit = __atomic_load_n(&s->limit, __ATOMIC_RELAXED);
    if (limit == 0)
        return 0;
    int64_t now = now_ns(), burst = (int64_t)BWLIMIT_BURST_MS * 1000000;
    int64_t cost = (int64_t)((double)n * 1e9 / (double)limit);
    int64_t due = __atomic_load_n(&s->due_ns, __ATOMIC_RELAXED), next;
    do {
        next = (due > now ? due : now) + cost;
    } while (!__atomic_compare_exchange_n(&s->due_ns, &due, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return next - burst > now ? (uint64_t)(next - burst - now) : 0;
}

void bwlimit_pace(bwlimit_t *b, int slot, size_t n)
{
    uint64_t wait = bwlimit_take(b, slot, n);
    if (wait > 0) {
        struct timespec ts = {(time_t)(wait / 1000000000), (long)(wait % 1000000000)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}

uint64_t bwlimit_limit(const bwlimit_t *b, int slot)
{
    return b == NULL || slot < 0 ? 0 : __atomic_load_n(&b->f->slot[slot].limit, __ATOMIC_RELAXED);
}

uint64_t bwlimit_bytes(const bwlimit_t *b, int slot)
{
    return b == NULL || slot < 0 ? 0 : __atomic_load_n(&b->f->slot[slot].bytes, __ATOMIC_RELAXED);
}

void bwlimit_close(bwlimit_t *b)
{
    if (b == NULL)
        return;
    munmap(b->f, sizeof(bwfile_t));
    free(b);
}
