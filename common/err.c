/* err.c - descriptions of the ComIO error codes. */
#include "common/err.h"

const char *cio_strerror(int err)
{
    switch (err) {
    case CIO_OK:
        return "success";
    case CIO_ENOMEM:
        return "out of memory";
    case CIO_EINVAL:
        return "invalid argument";
    case CIO_EIO:
        return "I/O error on the data store";
    case CIO_ENOSPC:
        return "no space left in the data store";
    case CIO_ENOTFOUND:
        return "not found";
    case CIO_ETOOBIG:
        return "too large";
    case CIO_ECONFIG:
        return "configuration error";
    case CIO_EDB:
        return "metadata database error";
    case CIO_ENOTEMPTY:
        return "not empty";
    case CIO_EPROTO:
        return "malformed record";
    case CIO_EAGAIN:
        return "try again";
    case CIO_EMAPFULL:
        return "metadata database map is full";
    case CIO_ESYS:
        return "system call failed";
    case CIO_ECHANGED:
        return "the object changed since the request's precondition was checked";
    case CIO_ECORRUPT:
        return "stored data does not match its checksum";
    }
    return "unknown error";
}
