/* err.h - the one error convention of ComIO.
 *
 * Every function that can fail returns int: 0 (CIO_OK) on success or one of
 * the negative codes below. Nothing else is returned as an error. */
#ifndef COMIO_ERR_H
#define COMIO_ERR_H

#define CIO_MUST_CHECK __attribute__((warn_unused_result))

typedef enum {
    CIO_OK = 0,
    CIO_ENOMEM = -1,     /* allocation failed */
    CIO_EINVAL = -2,     /* bad argument or malformed input */
    CIO_EIO = -3,        /* read/write/sync on the data store failed */
    CIO_ENOSPC = -4,     /* the data store has no extent large enough */
    CIO_ENOTFOUND = -5,  /* no such object, bucket, record or key */
    CIO_ETOOBIG = -7,    /* input exceeds a configured or built-in cap */
    CIO_ECONFIG = -8,    /* configuration or command-line error */
    CIO_EDB = -9,        /* LMDB reported an error (other than map full) */
    CIO_ENOTEMPTY = -10, /* bucket still holds objects */
    CIO_EPROTO = -11,    /* malformed wire or on-disk record */
    CIO_EAGAIN = -12,    /* try again later */
    CIO_EMAPFULL = -13,  /* the LMDB map is full */
    CIO_ESYS = -14,      /* a system call failed; errno tells which */
    CIO_ECHANGED = -15,  /* the object changed since a conditional request checked it */
    CIO_ECORRUPT = -16,  /* stored bytes do not match their checksum (common/blocksum.h) */
} cio_err_t;

/* Returns a static, human-readable description of `err` (never NULL). */
const char *cio_strerror(int err);

#endif
