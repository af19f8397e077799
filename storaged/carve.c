/* carve.c - extents for small PUTs, cut in memory from reserved chunks (see carve.h). */
#include <string.h>
#include "storaged/carve.h"

void carve_init(carve_t *cv)
{
    memset(cv, 0, sizeof(*cv));
    pthread_mutex_init(&cv->mu, NULL);
}

void carve_destroy(carve_t *cv)
{
    pthread_mutex_destroy(&cv->mu);
}

static carve_bin_t *bin_of(carve_t *cv, uint64_t len)
{
    uint64_t blocks = len / ALLOC_BLOCK;
    if (len % ALLOC_BLOCK != 0 || blocks == 0 || blocks > CARVE_BINS)
        return NULL;
    return &cv->bins[blocks - 1];
}

int carve_cut(carve_t *cv, uint64_t len, alloc_extent_t *out, int *want)
{
    carve_bin_t *bin = bin_of(cv, len);
    int ok = 0;

    pthread_mutex_lock(&cv->mu);
    cv->cutting = 1;
    if (bin != NULL && bin->n > 0) {
        *out = bin->e[--bin->n];
        cv->kept -= len;
        pthread_mutex_unlock(&cv->mu);
        return 1;
    }
    if (cv->cur.len < len) {
        /* move on, keeping the remainder for the committer; without room to
         * keep it, stay and let the caller allocate */
        if (cv->next.len < len || (cv->cur.len > 0 && cv->nleft == CARVE_LEFTOVERS)) {
            cv->want |= cv->next.len == 0;
            goto out;
        }
        if (cv->cur.len > 0)
            cv->left[cv->nleft++] = cv->cur;
        cv->cur = cv->next;
        cv->next = (alloc_extent_t){0, 0};
        cv->want = 1;
    }
    *out = (alloc_extent_t){cv->cur.off, len};
    cv->cur.off += len;
    cv->cur.len -= len;
    ok = 1;
out:
    if (cv->want)
        *want = 1;
    pthread_mutex_unlock(&cv->mu);
    return ok;
}

int carve_wants(carve_t *cv)
{
    pthread_mutex_lock(&cv->mu);
    int w = cv->want;
    pthread_mutex_unlock(&cv->mu);
    return w;
}

int carve_offer(carve_t *cv, alloc_extent_t e)
{
    int ret = 0;
    pthread_mutex_lock(&cv->mu);
    if (cv->next.len > 0) {
        ret = CIO_EINVAL;
    } else {
        cv->next = e;
        cv->want = 0;
    }
    pthread_mutex_unlock(&cv->mu);
    return ret;
}

size_t carve_room(carve_t *cv, uint64_t len, uint64_t *bytes)
{
    carve_bin_t *bin = bin_of(cv, len);
    size_t room;

    pthread_mutex_lock(&cv->mu);
    room = bin != NULL && cv->cutting ? CARVE_BIN_MAX - bin->n : 0;
    *bytes = CARVE_KEEP_BYTES - cv->kept;
    pthread_mutex_unlock(&cv->mu);
    return room;
}

int carve_keep(carve_t *cv, alloc_extent_t e)
{
    carve_bin_t *bin = bin_of(cv, e.len);
    int ret = 0;

    if (bin == NULL)
        return CIO_EINVAL;
    pthread_mutex_lock(&cv->mu);
    if (bin->n < CARVE_BIN_MAX && e.len <= CARVE_KEEP_BYTES - cv->kept) {
        bin->e[bin->n++] = e;
        cv->kept += e.len;
    } else {
        ret = CIO_EINVAL;
    }
    pthread_mutex_unlock(&cv->mu);
    return ret;
}

size_t carve_collect(carve_t *cv, int all, alloc_extent_t *out, size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&cv->mu);
    while (cv->nleft > 0 && n < max)
        out[n++] = cv->left[--cv->nleft];
    if (all) {
        if (cv->cur.len > 0 && n < max) {
            out[n++] = cv->cur;
            cv->cur = (alloc_extent_t){0, 0};
        }
        if (cv->next.len > 0 && n < max) {
            out[n++] = cv->next;
            cv->next = (alloc_extent_t){0, 0};
        }
        for (size_t b = 0; b < CARVE_BINS; b++)
            while (cv->bins[b].n > 0 && n < max) {
                out[n++] = cv->bins[b].e[--cv->bins[b].n];
                cv->kept -= out[n - 1].len;
            }
        cv->want = 0;
    }
    pthread_mutex_unlock(&cv->mu);
    return n;
}

size_t carve_restore(carve_t *cv, const alloc_extent_t *e, size_t n)
{
    size_t lost = 0;
    pthread_mutex_lock(&cv->mu);
    for (size_t i = 0; i < n; i++) {
        carve_bin_t *bin = bin_of(cv, e[i].len);
        if (bin != NULL && bin->n < CARVE_BIN_MAX && e[i].len <= CARVE_KEEP_BYTES - cv->kept) {
            bin->e[bin->n++] = e[i];
            cv->kept += e[i].len;
        } else if (cv->nleft < CARVE_LEFTOVERS)
            cv->left[cv->nleft++] = e[i];
        else
            lost++;
    }
    pthread_mutex_unlock(&cv->mu);
    return lost;
}
