/* ackfile.c - the acknowledgement file: a MAP_SHARED array of per-target ack points (layout and rules in ackfile.h). */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/ackfile.h"
#include "common/log.h"

#define ACKFILE_MAGIC 0x4b43414f494d4f43ULL /* "COMIOACK" read as little-endian bytes */
#define ACKFILE_LAYOUT 2

typedef struct {
    uint64_t magic, layout, tick, pad[29];
} ackfile_header_t;

typedef struct {
    uint64_t gen, store_hi, store_lo, url_hash, run_id, acked, nfailed;
    uint64_t failed[ACKFILE_FAILED_RING];
    char name[ACKFILE_NAME_MAX + 1];
    uint64_t pad[1];
} ackfile_slot_t;

_Static_assert(sizeof(ackfile_header_t) == 256 && sizeof(ackfile_slot_t) == 256, "the file's layout is fixed");

struct ackfile {
    int fd;
    void *map;
    char *path;
};

static ackfile_header_t *hdr(const ackfile_t *f)
{
    return f->map;
}

static ackfile_slot_t *slot_at(const ackfile_t *f, size_t i)
{
    return (ackfile_slot_t *)((char *)f->map + sizeof(ackfile_slot_t) * (i + 1));
}

int ackfile_open(ackfile_t **out, const char *dir)
{
    ackfile_t *f = calloc(1, sizeof(*f));
    struct stat st;
    size_t n = strlen(dir) + sizeof(ACKFILE_NAME) + 2;
    int ret = CIO_ESYS;

    *out = NULL;
    if (f == NULL || (f->path = malloc(n)) == NULL) {
        free(f);
        return CIO_ENOMEM;
    }
    f->fd = -1;
    f->map = MAP_FAILED;
    snprintf(f->path, n, "%s/%s", dir, ACKFILE_NAME);
    if ((f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot open the acknowledgement file", "path", f->path, "error", strerror(errno), NULL);
        goto fail;
    }
    if (fstat(f->fd, &st) != 0) {
        log_msg(LOG_LVL_ERROR, "fstat failed", "path", f->path, "error", strerror(errno), NULL);
        goto fail;
    }
    /* both daemons may size it at once: ftruncate to the same size is harmless, and new bytes read as zeros */
    if (st.st_size < ACKFILE_SIZE && ftruncate(f->fd, ACKFILE_SIZE) != 0) {
        log_msg(LOG_LVL_ERROR, "ftruncate failed", "path", f->path, "error", strerror(errno), NULL);
        goto fail;
    }
    if ((f->map = mmap(NULL, ACKFILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, 0)) == MAP_FAILED) {
        log_msg(LOG_LVL_ERROR, "mmap failed", "path", f->path, "error", strerror(errno), NULL);
        goto fail;
    }
    uint64_t zero = 0, magic = ACKFILE_MAGIC;
    /* the first opener writes the header; a racing one finds it already written */
    if (__atomic_compare_exchange_n(&hdr(f)->magic, &zero, magic, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        __atomic_store_n(&hdr(f)->layout, ACKFILE_LAYOUT, __ATOMIC_SEQ_CST);
    else if (zero != ACKFILE_MAGIC || (__atomic_load_n(&hdr(f)->layout, __ATOMIC_SEQ_CST) != ACKFILE_LAYOUT &&
                                       __atomic_load_n(&hdr(f)->layout, __ATOMIC_SEQ_CST) != 0)) {
        log_msg(LOG_LVL_ERROR, "the acknowledgement file holds something else; remove it", "path", f->path, NULL);
        ret = CIO_EINVAL;
        goto fail;
    }
    *out = f;
    return 0;
fail:
    ackfile_close(f);
    return ret;
}

void ackfile_close(ackfile_t *f)
{
    if (f == NULL)
        return;
    if (f->map != MAP_FAILED)
        munmap(f->map, ACKFILE_SIZE);
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    free(f);
}

const char *ackfile_path(const ackfile_t *f)
{
    return f->path;
}

uint64_t ackfile_url_hash(const char *url)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)url; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

static void tick(ackfile_t *f, int *ret)
{
    uint64_t t = __atomic_add_fetch(&hdr(f)->tick, 1, __ATOMIC_SEQ_CST);
    /* the same value, through write(2): what makes inotify report IN_MODIFY */
    if (pwrite(f->fd, &t, sizeof(t), offsetof(ackfile_header_t, tick)) != (ssize_t)sizeof(t))
        *ret = CIO_ESYS;
}

void ackfile_stamp(ackfile_t *f, size_t i, const ackfile_owner_t *owner, uint64_t run_id, uint64_t acked)
{
    ackfile_slot_t *s = slot_at(f, i);
    int ret = 0;
    char name[ACKFILE_NAME_MAX + 1];

    memset(name, 0, sizeof(name));
    snprintf(name, sizeof(name), "%s", owner->name);
    int same = __atomic_load_n(&s->store_hi, __ATOMIC_SEQ_CST) == owner->store_hi &&
               __atomic_load_n(&s->store_lo, __ATOMIC_SEQ_CST) == owner->store_lo &&
               __atomic_load_n(&s->url_hash, __ATOMIC_SEQ_CST) == owner->url_hash && memcmp(s->name, name, sizeof(name)) == 0;
    __atomic_store_n(&s->gen, (__atomic_load_n(&s->gen, __ATOMIC_SEQ_CST) | 1) + 2, __ATOMIC_SEQ_CST); /* odd: being stamped */
    if (!same) {
        __atomic_store_n(&s->nfailed, 0, __ATOMIC_SEQ_CST);
        for (size_t k = 0; k < ACKFILE_FAILED_RING; k++)
            __atomic_store_n(&s->failed[k], 0, __ATOMIC_SEQ_CST);
    }
    __atomic_store_n(&s->store_hi, owner->store_hi, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->store_lo, owner->store_lo, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->url_hash, owner->url_hash, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->run_id, run_id, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->acked, acked, __ATOMIC_SEQ_CST);
    for (size_t k = 0; k < sizeof(name); k++)
        __atomic_store_n(&s->name[k], name[k], __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->gen, __atomic_load_n(&s->gen, __ATOMIC_SEQ_CST) + 1, __ATOMIC_SEQ_CST); /* even: done */
    tick(f, &ret);
}

int ackfile_publish(ackfile_t *f, size_t i, uint64_t acked)
{
    ackfile_slot_t *s = slot_at(f, i);
    int ret = 0;

    if (acked <= __atomic_load_n(&s->acked, __ATOMIC_SEQ_CST))
        return 0;
    __atomic_store_n(&s->acked, acked, __ATOMIC_SEQ_CST);
    tick(f, &ret);
    return ret;
}

void ackfile_note_failed(ackfile_t *f, size_t i, uint64_t seq)
{
    ackfile_slot_t *s = slot_at(f, i);
    uint64_t n = __atomic_load_n(&s->nfailed, __ATOMIC_SEQ_CST);
    /* the entry before the count: a reader that sees the count sees the entry */
    __atomic_store_n(&s->failed[n % ACKFILE_FAILED_RING], seq, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->nfailed, n + 1, __ATOMIC_SEQ_CST);
}

/* The slot stamped for owner, with its gen at the time it matched; NULL when none can be trusted. */
static ackfile_slot_t *find(const ackfile_t *f, const ackfile_owner_t *owner, uint64_t *gen)
{
    size_t nlen = strlen(owner->name);

    if (nlen > ACKFILE_NAME_MAX || __atomic_load_n(&hdr(f)->magic, __ATOMIC_SEQ_CST) != ACKFILE_MAGIC)
        return NULL;
    for (size_t i = 0; i < ACKFILE_SLOTS; i++) {
        ackfile_slot_t *s = slot_at(f, i);
        char name[ACKFILE_NAME_MAX + 1];
        uint64_t g1 = __atomic_load_n(&s->gen, __ATOMIC_SEQ_CST);
        if (g1 == 0 || (g1 & 1) != 0)
            continue;
        for (size_t k = 0; k < sizeof(name); k++)
            name[k] = __atomic_load_n(&s->name[k], __ATOMIC_SEQ_CST);
        if (memcmp(name, owner->name, nlen) == 0 && name[nlen] == '\0' &&
            __atomic_load_n(&s->store_hi, __ATOMIC_SEQ_CST) == owner->store_hi &&
            __atomic_load_n(&s->store_lo, __ATOMIC_SEQ_CST) == owner->store_lo &&
            __atomic_load_n(&s->url_hash, __ATOMIC_SEQ_CST) == owner->url_hash) {
            *gen = g1;
            return s;
        }
    }
    return NULL;
}

int ackfile_read(const ackfile_t *f, const ackfile_owner_t *owner, uint64_t *acked, uint64_t *nfailed)
{
    uint64_t g, a, n;
    ackfile_slot_t *s = find(f, owner, &g);

    if (s == NULL)
        return CIO_ENOTFOUND;
    a = __atomic_load_n(&s->acked, __ATOMIC_SEQ_CST);
    n = __atomic_load_n(&s->nfailed, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&s->gen, __ATOMIC_SEQ_CST) != g)
        return CIO_ENOTFOUND; /* restamped meanwhile */
    *acked = a;
    if (nfailed != NULL)
        *nfailed = n;
    return 0;
}

int ackfile_was_failed(const ackfile_t *f, const ackfile_owner_t *owner, uint64_t seq, uint64_t since)
{
    uint64_t g, n;
    ackfile_slot_t *s = find(f, owner, &g);
    int found = 0;

    if (s == NULL)
        return 1;
    n = __atomic_load_n(&s->nfailed, __ATOMIC_SEQ_CST);
    /* The whole ring is searched: the event may have failed before the reader
     * took `since`. Half the ring is the margin for those; beyond it the
     * ring may have turned over its entry: cannot tell. */
    if (n < since || n - since > ACKFILE_FAILED_RING / 2)
        found = 1;
    for (uint64_t k = n > ACKFILE_FAILED_RING ? n - ACKFILE_FAILED_RING : 0; k < n && !found; k++)
        found = __atomic_load_n(&s->failed[k % ACKFILE_FAILED_RING], __ATOMIC_SEQ_CST) == seq;
    if (__atomic_load_n(&s->gen, __ATOMIC_SEQ_CST) != g)
        return 1;
    return found;
}
