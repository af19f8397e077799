/* store.h - the data store: a block device or image file read and written by offset.
 *
 * storaged owns the whole space; extents are handed out by alloc.h. The first
 * block holds a superblock that ties the store to its metadata environment so
 * that a store is never opened with another store's metadata. */
#ifndef COMIO_STORE_H
#define COMIO_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "common/err.h"

#define STORE_SUPER_SIZE 4096u

typedef struct store {
    int fd;
    int is_device;
    uint64_t size; /* bytes managed (device size or configured size) */
    char *path;    /* owned */
} store_t;

/* Opens `path`. A block device is used whole (its size when `size` is 0, or
 * `size` if smaller); a regular file is created sparse if missing and grown to
 * `size` if smaller (a file is never shrunk). `size` 0 with a missing or empty
 * file fails. The store is locked (flock, exclusive) for as long as it is
 * open: a second store_open of it, from any process, fails. On failure writes a one-line reason into err and returns
 * CIO_ECONFIG, CIO_ESYS or CIO_EINVAL. */
int store_open(store_t *s, const char *path, uint64_t size, char *err, size_t errlen) CIO_MUST_CHECK;

void store_close(store_t *s);

/* Writes len bytes at off (all of them, retrying short writes). 0 or CIO_EIO. */
int store_write(store_t *s, uint64_t off, const void *buf, size_t len) CIO_MUST_CHECK;

/* Reads len bytes at off into buf. 0 or CIO_EIO (short read included). */
int store_read(store_t *s, uint64_t off, void *buf, size_t len) CIO_MUST_CHECK;

/* Copies len bytes at src to dst inside the store (the ranges must not
 * overlap) with copy_file_range(2): the kernel moves them from page cache to
 * page cache, with no copy through this process. Returns 0, CIO_EIO (logged;
 * some bytes may have been copied), or CIO_EAGAIN, nothing copied and
 * nothing logged, when the kernel cannot copy within this store (a block
 * device, a file system without it): copy through a buffer instead. Not
 * durable before store_sync. */
int store_copy(store_t *s, uint64_t dst, uint64_t src, uint64_t len) CIO_MUST_CHECK;

/* Starts writing back the bytes at off..off+len already written
 * (sync_file_range(2), SYNC_FILE_RANGE_WRITE) without waiting for them, so
 * that a later store_sync has less left to wait for while the caller does
 * other work meanwhile. A hint: it makes nothing durable, and what fails
 * here fails store_sync too, so it returns nothing and logs nothing. */
void store_writeback(store_t *s, uint64_t off, uint64_t len);

/* Makes every completed write durable (fdatasync). 0 or CIO_EIO. */
int store_sync(store_t *s) CIO_MUST_CHECK;

/* Reads the superblock. Returns 0 and the 16-byte store id, CIO_ENOTFOUND when
 * the first block carries no ComIO superblock, or CIO_EIO. */
int store_read_super(store_t *s, uint8_t id[16]) CIO_MUST_CHECK;

/* Writes and syncs a superblock with `id`. 0 or CIO_EIO. */
int store_write_super(store_t *s, const uint8_t id[16]) CIO_MUST_CHECK;

#endif
