/* store.c - positional I/O on the data store (block device or image file). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/lockfile.h"
#include "common/log.h"
#include "storaged/store.h"

#define SUPER_MAGIC "COMIO-STORE\0\0\0\0\1" /* 16 bytes; last byte is the layout version */

int store_open(store_t *s, const char *path, uint64_t size, char *err, size_t errlen)
{
    struct stat st;

    memset(s, 0, sizeof(*s));
    s->fd = -1;
    if ((s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return CIO_ESYS;
    }
    /* One storaged per store: a second one would hand out the same extents
     * from its own free map, and its start-up would reclaim the first one's
     * extents in flight as abandoned. The lock goes with the process, crash
     * or not; repld opens the store read-only and takes none. */
    if (lockfile_lock_fd(s->fd, path, "the store's lock", "storaged", err, errlen) != 0)
        goto fail;
    if (fstat(s->fd, &st) != 0) {
        snprintf(err, errlen, "%s: fstat: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t devsize = 0;
        if (ioctl(s->fd, BLKGETSIZE64, &devsize) != 0) {
            snprintf(err, errlen, "%s: BLKGETSIZE64: %s", path, strerror(errno));
            goto fail;
        }
        s->is_device = 1;
        s->size = size == 0 || size > devsize ? devsize : size;
    } else if (S_ISREG(st.st_mode)) {
        if (size == 0) {
            if (st.st_size == 0) {
                snprintf(err, errlen, "%s: server.storage_size is required for a new image file", path);
                goto fail;
            }
            size = (uint64_t)st.st_size;
        }
        if ((uint64_t)st.st_size < size && ftruncate(s->fd, (off_t)size) != 0) {
            snprintf(err, errlen, "%s: cannot grow to %llu bytes: %s", path, (unsigned long long)size, strerror(errno));
            goto fail;
        }
        s->size = size;
    } else {
        snprintf(err, errlen, "%s: not a block device or regular file", path);
        goto fail;
    }
    if (s->size < 2 * STORE_SUPER_SIZE) {
        snprintf(err, errlen, "%s: too small (%llu bytes)", path, (unsigned long long)s->size);
        goto fail;
    }
    if ((s->path = strdup(path)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    return 0;
fail:
    close(s->fd);
    s->fd = -1;
    return CIO_ECONFIG;
}

void store_close(store_t *s)
{
    if (s->fd != -1)
        close(s->fd);
    s->fd = -1;
    free(s->path);
    s->path = NULL;
}

int store_write(store_t *s, uint64_t off, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(s->fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_msg(LOG_LVL_ERROR, "pwrite failed", "path", s->path, "error", strerror(errno), NULL);
            return CIO_EIO;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int store_read(store_t *s, uint64_t off, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(s->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_msg(LOG_LVL_ERROR, "pread failed", "path", s->path, "error", n == 0 ? "short read" : strerror(errno), NULL);
            return CIO_EIO;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int store_copy(store_t *s, uint64_t dst, uint64_t src, uint64_t len)
{
    loff_t in = (loff_t)src, out = (loff_t)dst;
    int first = 1;

    while (len > 0) {
        ssize_t n = copy_file_range(s->fd, &in, s->fd, &out, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && first && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS))
            return CIO_EAGAIN;
        if (n <= 0) {
            log_msg(LOG_LVL_ERROR, "copy_file_range failed", "path", s->path, "error", n == 0 ? "short copy" : strerror(errno),
                    NULL);
            return CIO_EIO;
        }
        first = 0;
        len -= (uint64_t)n;
    }
    return 0;
}

void store_writeback(store_t *s, uint64_t off, uint64_t len)
{
    if (len > 0)
        (void)sync_file_range(s->fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE);
}

int store_sync(store_t *s)
{
    if (fdatasync(s->fd) != 0) {
        log_msg(LOG_LVL_ERROR, "fdatasync failed", "path", s->path, "error", strerror(errno), NULL);
        return CIO_EIO;
    }
    return 0;
}

int store_read_super(store_t *s, uint8_t id[16])
{
    uint8_t block[32];
    int ret;

    if ((ret = store_read(s, 0, block, sizeof(block))) != 0)
        return ret;
    if (memcmp(block, SUPER_MAGIC, 16) != 0)
        return CIO_ENOTFOUND;
    memcpy(id, block + 16, 16);
    return 0;
}

int store_write_super(store_t *s, const uint8_t id[16])
{
    uint8_t block[STORE_SUPER_SIZE];
    int ret;

    memset(block, 0, sizeof(block));
    memcpy(block, SUPER_MAGIC, 16);
    memcpy(block + 16, id, 16);
    if ((ret = store_write(s, 0, block, sizeof(block))) != 0)
        return ret;
    return store_sync(s);
}
