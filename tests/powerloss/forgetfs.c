/* forgetfs.c - a FUSE passthrough file system that keeps unsynced writes in memory and forgets them on a power cut.
 *
 *   forgetfs [--trace FILE] [--seed N] [--cut-at-sync N] BACKING_DIR MOUNTPOINT
 *
 * BACKING_DIR holds exactly the durable state. A write through the mount is
 * kept here, per file, as an ordered list of pending writes and truncates,
 * until the file is synced: fsync or fdatasync, or a write to a file opened
 * O_SYNC or O_DSYNC. A close (FUSE flush) syncs nothing, even of a file opened
 * O_SYNC: every write through it was synced when made, and a process that dies
 * closes its files without making anything durable. Reads see the pending data. The
 * namespace (create, unlink, rename, mkdir, ...) goes to BACKING_DIR at once.
 * lock.mdb and files named *.lock, *.sock, *.wake are written through.
 *
 * Signals: SIGKILL, SIGTERM, SIGINT: a power cut, nothing unsynced survives.
 * SIGUSR1: a torn cut, a random subset of the pending writes survives, each
 * write split at 4 KiB page boundaries and each piece kept or dropped (an
 * xorshift64 generator seeded by --seed). SIGHUP: every file is synced.
 * Signals are read from a signalfd between requests, so a cut never lands in
 * the middle of a request.
 *
 * --cut-at-sync N cuts the power when the N-th sync arrives, before it
 * persists anything: a cut at an exact persistence point (the first is 1).
 * From then on no request is answered (the processes on the mount stop where
 * they are, as in a power cut, and can be killed), until SIGTERM, SIGINT or
 * SIGUSR1 ends forgetfs as above.
 * SIGUSR2 starts the count again from 0 (to count from a moment of a test's
 * choosing, e.g. after a daemon's start-up).
 *
 * --trace FILE records every persistence-relevant operation (W, T, S, N, M
 * lines; the format is in docs/reliability.md). A write to MOUNTPOINT/.forgetfs-mark
 * appends an M record and is stored nowhere. */
#define FUSE_USE_VERSION 31
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "common/hex.h"
#include "common/percent.h"

#define PAGE 4096u
#define PENDING_MAX ((size_t)1 << 30) /* unsynced bytes held at most, over all files: then writes fail ENOSPC */
#define MARK_NAME "/.forgetfs-mark"
#define MARK_MAX 4096 /* bytes of one marker */

enum op_kind { OP_WRITE, OP_TRUNC };

/* One pending change of a file, in the order it was made. */
typedef struct {
    enum op_kind kind;
    uint64_t off; /* OP_WRITE: where; OP_TRUNC: the new size */
    size_t len;   /* OP_WRITE only */
    char *data;   /* OP_WRITE only: owned, len bytes */
} op_t;

/* A regular file with pending changes or open handles, known by its backing inode. */
typedef struct node {
    struct node *next;
    dev_t dev;
    ino_t ino;
    int fd;          /* the backing file, read-write; owned */
    int refs;        /* open handles */
    int passthrough; /* written through at once (lock files, sockets, wake files) */
    int orphan;      /* its last name was unlinked: out of the table, pending data dropped */
    uint64_t size;   /* the size as the mount shows it (pending changes applied) */
    op_t *ops;       /* owned, nops of cap */
    size_t nops, cap;
} node_t;

/* One open file: fuse_file_info.fh points here. */
typedef struct {
    node_t *node; /* NULL for the marker file */
    int flags;    /* open flags */
} handle_t;

static struct {
    int bfd;         /* BACKING_DIR */
    node_t *nodes;   /* the table, a list (a store holds a handful of files) */
    size_t pending;  /* unsynced bytes over all files */
    FILE *trace;     /* NULL without --trace */
    uint64_t rng;    /* xorshift64 state, never 0 */
    uint64_t syncs;  /* syncs so far, of files with pending changes or not (--cut-at-sync) */
    uint64_t cut_at; /* --cut-at-sync N, 0 without */
    int sfd;         /* the signalfd of the signals that end forgetfs or sync it */
} fs;

static const char *rel(const char *path)
{
    while (*path == '/')
        path++;
    return *path ? path : ".";
}

static int is_passthrough(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (strcmp(base, "lock.mdb") == 0)
        return 1;
    static const char *const suffixes[] = {".lock", ".sock", ".wake"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t m = strlen(suffixes[i]);
        if (n >= m && strcmp(base + n - m, suffixes[i]) == 0)
            return 1;
    }
    return 0;
}

static uint64_t xorshift64(void)
{
    uint64_t x = fs.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return fs.rng = x;
}

/* --- the trace ------------------------------------------------------------------------------------------------ */

static void trace_path(const char *path)
{
    char enc[3 * PATH_MAX];
    const char *r = path ? rel(path) : "?";
    size_t n = percent_encode(enc, sizeof(enc), r, strlen(r), PERCENT_KEEP_SLASH);
    fputc(' ', fs.trace);
    fwrite(enc, 1, n < sizeof(enc) ? n : sizeof(enc), fs.trace);
}

static void trace_write(const char *path, uint64_t off, const char *data, size_t len)
{
    char hex[2 * PAGE + 1];
    if (!fs.trace)
        return;
    fputc('W', fs.trace);
    trace_path(path);
    fprintf(fs.trace, " %" PRIu64 " %zu ", off, len);
    for (size_t done = 0; done < len; done += PAGE) {
        size_t n = len - done < PAGE ? len - done : PAGE;
        hex_encode(hex, data + done, n);
        fwrite(hex, 1, 2 * n, fs.trace);
    }
    fputc('\n', fs.trace);
}

static void trace_trunc(const char *path, uint64_t size)
{
    if (!fs.trace)
        return;
    fputc('T', fs.trace);
    trace_path(path);
    fprintf(fs.trace, " %" PRIu64 "\n", size);
}

static void trace_sync(const char *path)
{
    if (!fs.trace)
        return;
    fputc('S', fs.trace);
    trace_path(path);
    fputc('\n', fs.trace);
    fflush(fs.trace);
}

static void trace_ns(const char *op, const char *path, const char *path2)
{
    if (!fs.trace)
        return;
    fprintf(fs.trace, "N %s", op);
    trace_path(path);
    if (path2)
        trace_path(path2);
    fputc('\n', fs.trace);
}

static void trace_mark(const char *text, size_t len)
{
    if (!fs.trace)
        return;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    fputs("M ", fs.trace);
    for (size_t i = 0; i < len; i++)
        fputc(text[i] == '\n' || text[i] == '\r' ? ' ' : text[i], fs.trace);
    fputc('\n', fs.trace);
    fflush(fs.trace);
}

/* --- nodes ---------------------------------------------------------------------------------------------------- */

static node_t *node_find(dev_t dev, ino_t ino)
{
    for (node_t *n = fs.nodes; n; n = n->next)
        if (n->dev == dev && n->ino == ino)
            return n;
    return NULL;
}

static void node_drop_ops(node_t *n)
{
    for (size_t i = 0; i < n->nops; i++) {
        if (n->ops[i].kind == OP_WRITE)
            fs.pending -= n->ops[i].len;
        free(n->ops[i].data);
    }
    n->nops = 0;
}

static void node_unlink_table(node_t *n)
{
    for (node_t **p = &fs.nodes; *p; p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            return;
        }
    }
}

/* Frees n when nothing needs it any more: no open handle, nothing pending. */
static void node_maybe_free(node_t *n)
{
    if (n->refs > 0 || (n->nops > 0 && !n->orphan))
        return;
    if (!n->orphan)
        node_unlink_table(n);
    node_drop_ops(n);
    free(n->ops);
    close(n->fd);
    free(n);
}

/* The node of the regular file at path, made (and its backing file opened) when there is none.
 * Returns 0 or -errno. */
static int node_get(const char *path, node_t **out)
{
    struct stat st;
    if (fstatat(fs.bfd, rel(path), &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    node_t *n = node_find(st.st_dev, st.st_ino);
    if (n) {
        *out = n;
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((n = calloc(1, sizeof(*n))) == NULL)
        return -ENOMEM;
    n->fd = openat(fs.bfd, rel(path), O_RDWR | O_CLOEXEC);
    if (n->fd < 0) {
        int e = -errno;
        free(n);
        return e;
    }
    n->dev = st.st_dev;
    n->ino = st.st_ino;
    n->size = (uint64_t)st.st_size;
    n->passthrough = is_passthrough(path);
    n->next = fs.nodes;
    fs.nodes = n;
    *out = n;
    return 0;
}

static int node_push(node_t *n, op_t op)
{
    if (n->nops == n->cap) {
        size_t cap = n->cap ? 2 * n->cap : 16;
        op_t *ops = realloc(n->ops, cap * sizeof(*ops));
        if (!ops)
            return -ENOMEM;
        n->ops = ops;
        n->cap = cap;
    }
    n->ops[n->nops++] = op;
    return 0;
}

static int pwrite_all(int fd, const char *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        off += (uint64_t)w;
        len -= (size_t)w;
    }
    return 0;
}

static int op_apply(node_t *n, const op_t *op)
{
    if (op->kind == OP_TRUNC)
        return ftruncate(n->fd, (off_t)op->off) == 0 ? 0 : -errno;
    return pwrite_all(n->fd, op->data, op->len, op->off);
}

/* Makes every pending change of n durable, in order. Returns 0 or -errno. */
static int node_persist(node_t *n)
{
    for (size_t i = 0; i < n->nops; i++) {
        int e = op_apply(n, &n->ops[i]);
        if (e != 0) {
            fprintf(stderr, "forgetfs: cannot persist to the backing file: %s\n", strerror(-e));
            return e;
        }
    }
    node_drop_ops(n);
    return 0;
}

/* Counts a sync about to happen; the N-th of --cut-at-sync N never happens: the power goes first. */
static void freeze(void) __attribute__((noreturn));

static void sync_point(const char *path)
{
    if (++fs.syncs != fs.cut_at)
        return;
    fprintf(stderr, "forgetfs: power cut: at sync %" PRIu64 " (%s): no request is answered any more\n", fs.syncs,
            path ? rel(path) : "?");
    if (fs.trace)
        fflush(fs.trace);
    freeze();
}

/* --- the operations ------------------------------------------------------------------------------------------- */

static int is_mark(const char *path)
{
    return path && strcmp(path, MARK_NAME) == 0;
}

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->kernel_cache = 1; /* every change goes through this mount: the page cache stays right */
    cfg->hard_remove = 1;  /* no .fuse_hidden files: an unlinked open file is an orphan node */
    cfg->nullpath_ok = 0;  /* paths for the trace; an unlinked file's is NULL */
    cfg->direct_io = 0;
    cfg->use_ino = 1;
    return NULL;
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (is_mark(path)) {
        memset(st, 0, sizeof(*st));
        st->st_mode = S_IFREG | 0200;
        st->st_nlink = 1;
        return 0;
    }
    handle_t *h = fi ? (handle_t *)(uintptr_t)fi->fh : NULL;
    if (h && h->node) {
        if (fstat(h->node->fd, st) != 0)
            return -errno;
    } else if (!path) {
        return -ENOENT;
    } else if (fstatat(fs.bfd, rel(path), st, AT_SYMLINK_NOFOLLOW) != 0) {
        return -errno;
    }
    node_t *n = h && h->node ? h->node : node_find(st->st_dev, st->st_ino);
    if (n && !n->passthrough)
        st->st_size = (off_t)n->size;
    return 0;
}

static int ff_readlink(const char *path, char *buf, size_t size)
{
    ssize_t r = readlinkat(fs.bfd, rel(path), buf, size - 1);
    if (r < 0)
        return -errno;
    buf[r] = '\0';
    return 0;
}

static int ff_opendir(const char *path, struct fuse_file_info *fi)
{
    int fd = openat(fs.bfd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off, struct fuse_file_info *fi,
                      enum fuse_readdir_flags flags)
{
    int fd = dup((int)fi->fh);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = -errno;
        close(fd);
        return e;
    }
    rewinddir(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        memset(&st, 0, sizeof(st));
        st.st_ino = de->d_ino;
        st.st_mode = (mode_t)de->d_type << 12;
        if (filler(buf, de->d_name, &st, 0, 0))
            break;
    }
    closedir(d);
    return 0;
}

static int ff_releasedir(const char *path, struct fuse_file_info *fi)
{
    close((int)fi->fh);
    return 0;
}

static int ff_mknod(const char *path, mode_t mode, dev_t rdev)
{
    return mknodat(fs.bfd, rel(path), mode, rdev) == 0 ? 0 : -errno;
}

static int ff_mkdir(const char *path, mode_t mode)
{
    if (mkdirat(fs.bfd, rel(path), mode) != 0)
        return -errno;
    trace_ns("mkdir", path, NULL);
    return 0;
}

/* Drops the pending data of the file at path when its last name goes. */
static void forget_last_name(const char *path)
{
    struct stat st;
    if (fstatat(fs.bfd, rel(path), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1)
        return;
    node_t *n = node_find(st.st_dev, st.st_ino);
    if (!n)
        return;
    node_unlink_table(n);
    n->orphan = 1;
    node_drop_ops(n);
    node_maybe_free(n);
}

static int ff_unlink(const char *path)
{
    forget_last_name(path);
    if (unlinkat(fs.bfd, rel(path), 0) != 0)
        return -errno;
    trace_ns("unlink", path, NULL);
    return 0;
}

static int ff_rmdir(const char *path)
{
    if (unlinkat(fs.bfd, rel(path), AT_REMOVEDIR) != 0)
        return -errno;
    trace_ns("rmdir", path, NULL);
    return 0;
}

static int ff_symlink(const char *target, const char *path)
{
    return symlinkat(target, fs.bfd, rel(path)) == 0 ? 0 : -errno;
}

static int ff_rename(const char *from, const char *to, unsigned int flags)
{
    if (!(flags & RENAME_EXCHANGE))
        forget_last_name(to);
    if (syscall(SYS_renameat2, fs.bfd, rel(from), fs.bfd, rel(to), flags) != 0)
        return -errno;
    trace_ns("rename", from, to);
    return 0;
}

static int ff_link(const char *from, const char *to)
{
    return linkat(fs.bfd, rel(from), fs.bfd, rel(to), 0) == 0 ? 0 : -errno;
}

static int ff_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    handle_t *h = fi ? (handle_t *)(uintptr_t)fi->fh : NULL;
    if (is_mark(path) || (h && !h->node))
        return 0;
    if (h)
        return fchmod(h->node->fd, mode) == 0 ? 0 : -errno;
    return fchmodat(fs.bfd, rel(path), mode, 0) == 0 ? 0 : -errno;
}

static int ff_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    handle_t *h = fi ? (handle_t *)(uintptr_t)fi->fh : NULL;
    if (is_mark(path) || (h && !h->node))
        return 0;
    if (h)
        return fchown(h->node->fd, uid, gid) == 0 ? 0 : -errno;
    return fchownat(fs.bfd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int ff_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    handle_t *h = fi ? (handle_t *)(uintptr_t)fi->fh : NULL;
    if (is_mark(path) || (h && !h->node))
        return 0;
    if (h)
        return futimens(h->node->fd, tv) == 0 ? 0 : -errno;
    return utimensat(fs.bfd, rel(path), tv, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int set_size(node_t *n, const char *path, uint64_t size)
{
    if (n->passthrough || n->orphan)
        return ftruncate(n->fd, (off_t)size) == 0 ? 0 : -errno;
    int e = node_push(n, (op_t){.kind = OP_TRUNC, .off = size});
    if (e != 0)
        return e;
    n->size = size;
    trace_trunc(path, size);
    return 0;
}

static int ff_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    handle_t *h = fi ? (handle_t *)(uintptr_t)fi->fh : NULL;
    node_t *n;
    int e;
    if (is_mark(path) || (h && !h->node))
        return 0;
    if (size < 0)
        return -EINVAL;
    if (h) {
        n = h->node;
    } else if ((e = node_get(path, &n)) != 0) {
        return e;
    }
    e = set_size(n, path, (uint64_t)size);
    node_maybe_free(n);
    return e;
}

/* Opens (or creates, with O_CREAT) the file at path for a new handle. */
static int open_handle(const char *path, mode_t mode, struct fuse_file_info *fi, int create)
{
    handle_t *h = calloc(1, sizeof(*h));
    node_t *n = NULL;
    int e = 0;
    if (!h)
        return -ENOMEM;
    h->flags = fi->flags;
    if (is_mark(path))
        goto done;
    if (create) {
        int fd = openat(fs.bfd, rel(path), (fi->flags & (O_CREAT | O_EXCL)) | O_CREAT | O_RDWR | O_CLOEXEC, mode);
        if (fd < 0) {
            e = -errno;
            goto fail;
        }
        close(fd);
        trace_ns("create", path, NULL);
    }
    if ((e = node_get(path, &n)) != 0)
        goto fail;
    n->refs++;
    h->node = n;
    if ((fi->flags & O_TRUNC) && (e = set_size(n, path, 0)) != 0) {
        n->refs--;
        node_maybe_free(n);
        goto fail;
    }
done:
    fi->fh = (uint64_t)(uintptr_t)h;
    return 0;
fail:
    free(h);
    return e;
}

static int ff_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    return open_handle(path, mode, fi, 1);
}

static int ff_open(const char *path, struct fuse_file_info *fi)
{
    return open_handle(path, 0, fi, 0);
}

static int ff_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    handle_t *h = (handle_t *)(uintptr_t)fi->fh;
    if (!h->node)
        return 0;
    node_t *n = h->node;
    uint64_t o = (uint64_t)off;
    if (n->passthrough || n->orphan) {
        ssize_t r = pread(n->fd, buf, size, off);
        return r < 0 ? -errno : (int)r;
    }
    if (o >= n->size)
        return 0;
    if (size > n->size - o)
        size = (size_t)(n->size - o);
    /* the durable bytes, zeros past the backing file's end, then every pending change in order */
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(n->fd, buf + got, size - got, (off_t)(o + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    memset(buf + got, 0, size - got);
    uint64_t end = o + size;
    for (size_t i = 0; i < n->nops; i++) {
        const op_t *op = &n->ops[i];
        if (op->kind == OP_TRUNC) {
            if (op->off < end)
                memset(buf + (op->off > o ? op->off - o : 0), 0, end - (op->off > o ? op->off : o));
            continue;
        }
        uint64_t a = op->off > o ? op->off : o, b = op->off + op->len < end ? op->off + op->len : end;
        if (a < b)
            memcpy(buf + (a - o), op->data + (a - op->off), b - a);
    }
    return (int)size;
}

static int ff_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    handle_t *h = (handle_t *)(uintptr_t)fi->fh;
    int e;
    if (!h->node) {
        trace_mark(buf, size < MARK_MAX ? size : MARK_MAX);
        return (int)size;
    }
    node_t *n = h->node;
    if (n->passthrough || n->orphan) {
        e = pwrite_all(n->fd, buf, size, (uint64_t)off);
        return e != 0 ? e : (int)size;
    }
    if (fs.pending + size > PENDING_MAX) {
        fprintf(stderr, "forgetfs: more than %zu unsynced bytes: write refused\n", PENDING_MAX);
        return -ENOSPC;
    }
    char *data = malloc(size ? size : 1);
    if (!data)
        return -ENOMEM;
    memcpy(data, buf, size);
    if ((e = node_push(n, (op_t){.kind = OP_WRITE, .off = (uint64_t)off, .len = size, .data = data})) != 0) {
        free(data);
        return e;
    }
    fs.pending += size;
    if ((uint64_t)off + size > n->size)
        n->size = (uint64_t)off + size;
    trace_write(path, (uint64_t)off, buf, size);
    if (h->flags & (O_SYNC | O_DSYNC)) {
        sync_point(path);
        if ((e = node_persist(n)) != 0)
            return e;
        trace_sync(path);
    }
    return (int)size;
}

static int ff_statfs(const char *path, struct statvfs *st)
{
    return fstatvfs(fs.bfd, st) == 0 ? 0 : -errno;
}

static int sync_handle(const char *path, struct fuse_file_info *fi)
{
    handle_t *h = (handle_t *)(uintptr_t)fi->fh;
    if (!h->node || h->node->passthrough || h->node->orphan)
        return 0;
    sync_point(path);
    int e = node_persist(h->node);
    if (e == 0)
        trace_sync(path);
    return e;
}

static int ff_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    return sync_handle(path, fi);
}

static int ff_release(const char *path, struct fuse_file_info *fi)
{
    handle_t *h = (handle_t *)(uintptr_t)fi->fh;
    if (h->node) {
        h->node->refs--;
        node_maybe_free(h->node);
    }
    free(h);
    return 0;
}

static const struct fuse_operations ops = {
    .init = ff_init,
    .getattr = ff_getattr,
    .readlink = ff_readlink,
    .opendir = ff_opendir,
    .readdir = ff_readdir,
    .releasedir = ff_releasedir,
    .mknod = ff_mknod,
    .mkdir = ff_mkdir,
    .unlink = ff_unlink,
    .rmdir = ff_rmdir,
    .symlink = ff_symlink,
    .rename = ff_rename,
    .link = ff_link,
    .chmod = ff_chmod,
    .chown = ff_chown,
    .utimens = ff_utimens,
    .truncate = ff_truncate,
    .create = ff_create,
    .open = ff_open,
    .read = ff_read,
    .write = ff_write,
    .statfs = ff_statfs,
    .fsync = ff_fsync,
    .release = ff_release,
};

/* --- power --------------------------------------------------------------------------------------------------- */

static void sync_all(void)
{
    size_t files = 0;
    for (node_t *n = fs.nodes, *next; n; n = next) {
        next = n->next;
        if (n->nops == 0)
            continue;
        if (node_persist(n) != 0)
            exit(1);
        files++;
        node_maybe_free(n);
    }
    fprintf(stderr, "forgetfs: synced %zu files\n", files);
}

/* Persists each page-sized piece of each pending write, and each pending truncate, with probability 1/2. */
static void torn_cut(void)
{
    uint64_t kept = 0, dropped = 0;
    for (node_t *n = fs.nodes; n; n = n->next) {
        for (size_t i = 0; i < n->nops; i++) {
            const op_t *op = &n->ops[i];
            if (op->kind == OP_TRUNC) {
                if ((xorshift64() & 1) && op_apply(n, op) != 0)
                    exit(1);
                continue;
            }
            for (uint64_t a = op->off; a < op->off + op->len;) {
                uint64_t b = (a / PAGE + 1) * PAGE;
                if (b > op->off + op->len)
                    b = op->off + op->len;
                if (xorshift64() & 1) {
                    op_t piece = {.kind = OP_WRITE, .off = a, .len = b - a, .data = op->data + (a - op->off)};
                    if (op_apply(n, &piece) != 0)
                        exit(1);
                    kept++;
                } else {
                    dropped++;
                }
                a = b;
            }
        }
    }
    fprintf(stderr, "forgetfs: torn cut: %" PRIu64 " pages kept, %" PRIu64 " dropped\n", kept, dropped);
}

/* Ends forgetfs on SIGTERM, SIGINT (nothing unsynced persisted) or SIGUSR1 (a torn cut). */
static void power_off(uint32_t signo) __attribute__((noreturn));
static void power_off(uint32_t signo)
{
    if (signo == SIGUSR1)
        torn_cut();
    else
        fprintf(stderr, "forgetfs: power cut: %zu unsynced bytes forgotten\n", fs.pending);
    if (fs.trace)
        fflush(fs.trace);
    _exit(0); /* no unmount, no flush: the test unmounts lazily */
}

/* The disk after a --cut-at-sync cut: the request in hand and every later one are never
 * answered, so the processes using the mount do nothing more (they can be killed; one
 * waiting for this request goes once forgetfs has exited), until a signal ends forgetfs. */
static void freeze(void)
{
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t r = read(fs.sfd, &si, sizeof(si));
        if (r < 0 && errno == EINTR)
            continue;
        if (r != sizeof(si))
            power_off(SIGTERM);
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGUSR1)
            power_off(si.ssi_signo);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: forgetfs [--trace FILE] [--seed N] [--cut-at-sync N] BACKING_DIR MOUNTPOINT\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *trace = NULL, *backing = NULL, *mnt = NULL;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--trace") == 0 && i + 1 < argc) {
            trace = argv[++i];
        } else if (strcmp(argv[i], "--cut-at-sync") == 0 && i + 1 < argc) {
            fs.cut_at = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (argv[i][0] == '-') {
            usage();
        } else if (!backing) {
            backing = argv[i];
        } else if (!mnt) {
            mnt = argv[i];
        } else {
            usage();
        }
    }
    if (!mnt)
        usage();
    if (seed == 0)
        seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    fs.rng = seed ? seed : 1;
    if ((fs.bfd = open(backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "forgetfs: %s: %s\n", backing, strerror(errno));
        return 1;
    }
    if (trace && (fs.trace = fopen(trace, "ae")) == NULL) {
        fprintf(stderr, "forgetfs: %s: %s\n", trace, strerror(errno));
        return 1;
    }

    /* every signal that matters is read between requests, never delivered in the middle of one */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = fs.sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "forgetfs: signalfd: %s\n", strerror(errno));
        return 1;
    }

    static char opt_o[] = "-o", opt_mount[] = "default_permissions,fsname=forgetfs";
    char *fargv[] = {argv[0], opt_o, opt_mount, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse *f = fuse_new(&args, &ops, sizeof(ops), NULL);
    if (!f)
        return 1;
    if (fuse_mount(f, mnt) != 0) {
        fuse_destroy(f);
        return 1;
    }
    struct fuse_session *se = fuse_get_session(f);
    fprintf(stderr, "forgetfs: seed %" PRIu64 "\n", seed);
    fprintf(stderr, "forgetfs: ready %s %s\n", backing, mnt);

    struct fuse_buf buf = {0};
    for (;;) {
        struct pollfd pfd[2] = {{.fd = fuse_session_fd(se), .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "forgetfs: poll: %s\n", strerror(errno));
            return 1;
        }
        if (pfd[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) != sizeof(si))
                continue;
            if (si.ssi_signo == SIGHUP) {
                sync_all();
                continue;
            }
            if (si.ssi_signo == SIGUSR2) {
                fprintf(stderr, "forgetfs: sync count reset after %" PRIu64 " syncs\n", fs.syncs);
                fs.syncs = 0;
                continue;
            }
            power_off(si.ssi_signo);
        }
        if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
            break;
        if (pfd[0].revents & POLLIN) {
            int r = fuse_session_receive_buf(se, &buf);
            if (r == -EINTR || r == -EAGAIN)
                continue;
            if (r <= 0)
                break; /* unmounted */
            fuse_session_process_buf(se, &buf);
        }
    }
    /* unmounted from outside: what is unsynced stays unsynced */
    fprintf(stderr, "forgetfs: unmounted: %zu unsynced bytes forgotten\n", fs.pending);
    return 0;
}
