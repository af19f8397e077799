/* commit_chase.c - the chase thread: hashes each multipart upload's parts in order as they are stored (mpu_chase.h).
 *
 * The committer notes every part it commits (chase_note); this thread then
 * looks up part k+1 of that upload in a read-only transaction and, when it
 * is there, reads its bytes back (just written and synced: in the page
 * cache) into the upload's chase. A Complete takes the state (chase_take)
 * and hashes only the parts after the chased run; it checks that run
 * against the parts it lists, so nothing here needs to be right for the
 * object to be: a state lost, stale or dropped only costs the hashing.
 *
 * Reads are safe from reuse the way a GET's are: the reader token is taken
 * before the transaction that finds the part, so a commit that releases the
 * part's extent after that transaction keeps it from reuse until the read
 * is done (reuse.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "storaged/commit_int.h"

#define CHASE_UPLOADS_MAX 32             /* uploads chased at once; the least recently stored to is dropped for a new one */
#define CHASE_BYTES_MAX (16ULL << 30)    /* an upload is chased up to this many bytes (its CRCs: 1 MiB) */
#define CHASE_CHUNK (1u << 20)           /* bytes read at a time */
#define CHASE_IDLE_MS (15LL * 60 * 1000) /* a state no part was stored to for this long is dropped */
#define CHASE_SWEEP_MS (60LL * 1000)     /* how often idle states are looked for */

typedef struct chase_upload {
    char id[MPU_ID_LEN];
    mpu_chase_t st; /* run and nrun change under the lock; the rest is the thread's while `busy` */
    int64_t touched_ms;
    int wanted;         /* a part was stored since the thread last looked */
    int busy;           /* the thread works on st outside the lock */
    int dead;           /* nothing more to chase (over CHASE_BYTES_MAX, out of memory, an I/O error); the run stays good */
    int gone;           /* dropped while busy: the thread frees it */
    int taking;         /* a Complete waits to take it: the thread leaves it alone */
    int cancel;         /* atomic: a Complete takes it, or it was dropped: the thread stops at the next chunk */
    uint32_t rewind_to; /* a part of the run was stored again: go back to before this number (0: none) */
    mpu_part_t hashing; /* the part being fed while busy (number 0: none); under the lock */
    struct chase_upload *next;
} chase_upload_t;

struct commit_chase {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work for the thread, or stopping */
    pthread_cond_t idle_cv; /* an upload is not busy any more */
    chase_upload_t *head;
    size_t n;
    int stopping, started;
    pthread_t thread;
};

static chase_upload_t *find(commit_chase_t *h, const char *id, chase_upload_t ***link)
{
    chase_upload_t **p;
    for (p = &h->head; *p != NULL; p = &(*p)->next)
        if (memcmp((*p)->id, id, MPU_ID_LEN) == 0)
            break;
    if (link != NULL)
        *link = p;
    return *p;
}

static void unlink_free(commit_chase_t *h, chase_upload_t **link)
{
    chase_upload_t *u = *link;
    *link = u->next;
    h->n--;
    mpu_chase_free(&u->st);
    free(u);
}

/* Drops the states idle since before `cutoff` (all of them but busy ones with cutoff INT64_MAX). Under the lock. */
static void drop_idle(commit_chase_t *h, int64_t cutoff)
{
    for (chase_upload_t **p = &h->head; *p != NULL;) {
        if (!(*p)->busy && (*p)->touched_ms < cutoff)
            unlink_free(h, p);
        else
            p = &(*p)->next;
    }
}

/* Makes room for one more state by dropping the least recently stored to. Under the lock. */
static void make_room(commit_chase_t *h)
{
    chase_upload_t **oldest = NULL;
    for (chase_upload_t **p = &h->head; *p != NULL; p = &(*p)->next)
        if (!(*p)->busy && (oldest == NULL || (*p)->touched_ms < (*oldest)->touched_ms))
            oldest = p;
    if (oldest != NULL)
        unlink_free(h, oldest);
}

void chase_note(commit_t *c, const commit_job_t *j)
{
    commit_chase_t *h = c->chase;
    chase_upload_t **link, *u;

    if (h == NULL || j->result != 0 || (j->op != COMMIT_MPU_PART && j->op != COMMIT_MPU_COMPLETE && j->op != COMMIT_MPU_ABORT))
        return;
    pthread_mutex_lock(&h->mu);
    if (!h->started || h->stopping)
        goto out;
    u = find(h, j->upload_id, &link);
    if (j->op != COMMIT_MPU_PART) { /* the upload is gone: its parts are no one's to chase */
        if (u != NULL && u->busy) {
            u->gone = 1;
            __atomic_store_n(&u->cancel, 1, __ATOMIC_RELAXED);
        } else if (u != NULL) {
            unlink_free(h, link);
        }
        goto out;
    }
    if (u == NULL) {
        if (h->n >= CHASE_UPLOADS_MAX)
            make_room(h);
        if (h->n >= CHASE_UPLOADS_MAX || (u = calloc(1, sizeof(*u))) == NULL)
            goto out;
        if (mpu_chase_init(&u->st, c->md5) != 0) {
            mpu_chase_free(&u->st);
            free(u);
            goto out;
        }
        memcpy(u->id, j->upload_id, MPU_ID_LEN);
        u->next = h->head;
        h->head = u;
        h->n++;
    }
    /* the record this part's commit wrote: a run entry (or the part being fed) of that number that is not it was
     * replaced */
    mpu_part_t rec = {.number = j->part_number, .ext = j->ext, .size = j->size, .mtime_ms = j->mtime_ms};
    memcpy(rec.md5, j->etag, 16);
    int stale = 0;
    if (j->part_number <= u->st.nrun) /* the run changes under the lock only */
        stale = !mpu_chase_same_part(&u->st.run[j->part_number - 1], &rec);
    else if (u->hashing.number == j->part_number)
        stale = !mpu_chase_same_part(&u->hashing, &rec);
    if (stale && (u->rewind_to == 0 || j->part_number < u->rewind_to))
        u->rewind_to = j->part_number;
    u->touched_ms = clock_wall_ms();
    u->wanted = 1;
    pthread_cond_signal(&h->cv);
out:
    pthread_mutex_unlock(&h->mu);
}

int chase_take(commit_t *c, const char *id, mpu_chase_t *out)
{
    commit_chase_t *h = c->chase;
    chase_upload_t **link, *u;

    memset(out, 0, sizeof(*out));
    if (h == NULL)
        return CIO_ENOTFOUND;
    pthread_mutex_lock(&h->mu);
    while ((u = find(h, id, &link)) != NULL && u->busy) {
        u->taking = 1;
        __atomic_store_n(&u->cancel, 1, __ATOMIC_RELAXED);
        pthread_cond_wait(&h->idle_cv, &h->mu);
    }
    if (u == NULL) {
        pthread_mutex_unlock(&h->mu);
        return CIO_ENOTFOUND;
    }
    *link = u->next;
    h->n--;
    pthread_mutex_unlock(&h->mu);
    *out = u->st; /* moved: the caller frees it */
    free(u);
    return 0;
}

/* Feeds part `number` of u's upload to its chase, if it is stored: 1 when
 * it joined the run, 0 when it is not there (or the chase was cancelled
 * meanwhile: the state is back to the end of the run), a CIO_* code when
 * the upload can be chased no further. Outside the lock, u busy. */
static int chase_part(commit_t *c, commit_chase_t *h, chase_upload_t *u, char *buf)
{
    uint32_t number = mpu_chase_next(&u->st);
    uint64_t token, left, at;
    MDB_txn *txn;
    mpu_part_t p;
    int ret, rc;

    if (number > MPU_PART_MAX)
        return 0;
    token = commit_reader_enter(c);
    if ((rc = mdb_txn_begin(c->meta->env, NULL, MDB_RDONLY, &txn)) != 0) {
        commit_reader_leave(c, token);
        return meta_err(rc, "mdb_txn_begin(chase)");
    }
    ret = mpu_part_get(c->meta, txn, u->id, number, &p);
    mdb_txn_abort(txn);
    if (ret != 0) {
        commit_reader_leave(c, token);
        return ret == CIO_ENOTFOUND ? 0 : ret;
    }
    if (mpu_chase_bytes(&u->st) + p.size > CHASE_BYTES_MAX) {
        commit_reader_leave(c, token);
        return CIO_ETOOBIG;
    }
    pthread_mutex_lock(&h->mu);
    u->hashing = p;
    pthread_mutex_unlock(&h->mu);
    ret = 0;
    for (at = p.ext.off, left = p.size; left > 0 && ret == 0;) {
        size_t n = left < CHASE_CHUNK ? (size_t)left : CHASE_CHUNK;
        if (__atomic_load_n(&u->cancel, __ATOMIC_RELAXED))
            break;
        if ((ret = store_read(c->store, at, buf, n)) == 0)
            ret = mpu_chase_feed(&u->st, buf, n);
        at += n;
        left -= n;
    }
    commit_reader_leave(c, token);
    pthread_mutex_lock(&h->mu);
    if (ret == 0 && left > 0) /* cancelled: back to the end of the run */
        mpu_chase_rewind(&u->st, u->st.nrun);
    else if (ret == 0 && (ret = mpu_chase_part_done(&u->st, &p)) == 0)
        ret = 1;
    u->hashing.number = 0;
    pthread_mutex_unlock(&h->mu);
    return ret;
}

static void *chase_main(void *arg)
{
    commit_t *c = arg;
    commit_chase_t *h = c->chase;
    char *buf = malloc(CHASE_CHUNK);
    int64_t next_sweep = clock_wall_ms() + CHASE_SWEEP_MS;

    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        chase_upload_t **link = NULL, *u;
        int64_t now = clock_wall_ms();
        if (now >= next_sweep) {
            drop_idle(h, now - CHASE_IDLE_MS);
            next_sweep = now + CHASE_SWEEP_MS;
        }
        for (link = &h->head; *link != NULL && !((*link)->wanted && !(*link)->dead && !(*link)->taking); link = &(*link)->next)
            ;
        if ((u = *link) == NULL || buf == NULL) {
            struct timespec ts = clock_wall_after(next_sweep - now);
            pthread_cond_timedwait(&h->cv, &h->mu, &ts);
            continue;
        }
        /* to the end of the list: uploads take turns, a part each */
        *link = u->next;
        u->next = NULL;
        for (link = &h->head; *link != NULL; link = &(*link)->next)
            ;
        *link = u;
        u->wanted = 0;
        u->busy = 1;
        __atomic_store_n(&u->cancel, 0, __ATOMIC_RELAXED);
        if (u->rewind_to != 0) {
            mpu_chase_rewind(&u->st, u->rewind_to - 1);
            u->rewind_to = 0;
        }
        pthread_mutex_unlock(&h->mu);

        int ret = chase_part(c, h, u, buf);

        pthread_mutex_lock(&h->mu);
        u->busy = 0;
        if (ret == 1) {
            u->wanted = 1; /* the next part may be there already */
        } else if (ret < 0) {
            /* the run so far still serves a Complete; nothing more is chased */
            mpu_chase_rewind(&u->st, u->st.nrun);
            u->dead = 1;
        }
        if (u->gone) {
            chase_upload_t **p = &h->head;
            while (*p != u)
                p = &(*p)->next;
            unlink_free(h, p);
        }
        pthread_cond_broadcast(&h->idle_cv);
    }
    pthread_mutex_unlock(&h->mu);
    free(buf);
    return NULL;
}

int chase_start(commit_t *c)
{
    commit_chase_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return CIO_ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    pthread_cond_init(&h->idle_cv, NULL);
    c->chase = h;
    if (pthread_create(&h->thread, NULL, chase_main, c) != 0) {
        /* no chase: every Complete hashes its parts itself */
        log_msg(LOG_LVL_WARN, "cannot start the multipart chase thread", "error", strerror(errno), NULL);
        return 0;
    }
    h->started = 1;
    return 0;
}

void chase_stop(commit_t *c)
{
    commit_chase_t *h = c->chase;
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    for (chase_upload_t *u = h->head; u != NULL; u = u->next)
        __atomic_store_n(&u->cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (h->started)
        pthread_join(h->thread, NULL);
    pthread_mutex_lock(&h->mu); /* the committer and the I/O threads still run */
    drop_idle(h, INT64_MAX);
    pthread_mutex_unlock(&h->mu);
}

void chase_free(commit_t *c)
{
    commit_chase_t *h = c->chase;
    if (h == NULL)
        return;
    drop_idle(h, INT64_MAX);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    pthread_cond_destroy(&h->idle_cv);
    free(h);
    c->chase = NULL;
}
