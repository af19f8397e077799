/* mpwrite.h - the msgpack-c packing helpers the wire encoders of proto/ share.
 *
 * Each returns 0, or -1 when msgpack-c's buffer could not grow (as msgpack-c
 * itself does). The body of an empty str or bin is not written at all:
 * msgpack_sbuffer_write would memcpy from a NULL pointer. */
#ifndef COMIO_MPWRITE_H
#define COMIO_MPWRITE_H

#include <stddef.h>
#include <string.h>
#include <msgpack.h>

/* A map key: the NUL-terminated string k. */
static inline int mpw_key(msgpack_packer *pk, const char *k)
{
    return msgpack_pack_str_with_body(pk, k, strlen(k));
}

/* A str of len bytes (s may be NULL when len is 0). */
static inline int mpw_str(msgpack_packer *pk, const char *s, size_t len)
{
    if (msgpack_pack_str(pk, len) != 0)
        return -1;
    return len == 0 ? 0 : msgpack_pack_str_body(pk, s, len);
}

/* A bin of len bytes (b may be NULL when len is 0). */
static inline int mpw_bin(msgpack_packer *pk, const void *b, size_t len)
{
    if (msgpack_pack_bin(pk, len) != 0)
        return -1;
    return len == 0 ? 0 : msgpack_pack_bin_body(pk, b, len);
}

#endif
