/* bucket.c - bucket name rules (S3's) and the names reserved for storaged's endpoints. */
#include <string.h>
#include "common/bucket.h"

/* Kept in step with BUCKET_RESERVED_TEXT. */
static const char *const reserved[] = {"admin", "metrics"};

/* A name formatted like an IPv4 address: four dot-separated groups of 1..3
 * digits (S3 refuses all of them, not only valid addresses). */
static int looks_like_ipv4(const char *name, size_t len)
{
    int groups = 1, digits = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '.') {
            if (digits == 0)
                return 0;
            groups++;
            digits = 0;
        } else if (name[i] >= '0' && name[i] <= '9') {
            if (++digits > 3)
                return 0;
        } else {
            return 0;
        }
    }
    return groups == 4 && digits > 0;
}

static int is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int bucket_name_valid(const char *name, size_t len)
{
    static const char alias_suffix[] = "-s3alias";
    const size_t alias_len = sizeof(alias_suffix) - 1;

    if (name == NULL || len < LIMIT_BUCKET_MIN || len > LIMIT_BUCKET_MAX)
        return 0;
    if (!is_lower_alnum(name[0]) || !is_lower_alnum(name[len - 1]))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!is_lower_alnum(c) && c != '-' && c != '.')
            return 0;
        if (c == '.' && i + 1 < len && name[i + 1] == '.')
            return 0;
    }
    if (len >= 4 && memcmp(name, "xn--", 4) == 0)
        return 0;
    if (len >= alias_len && memcmp(name + len - alias_len, alias_suffix, alias_len) == 0)
        return 0;
    return !looks_like_ipv4(name, len);
}

int bucket_name_reserved(const char *name, size_t len)
{
    if (name == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strlen(reserved[i]) == len && memcmp(name, reserved[i], len) == 0)
            return 1;
    return 0;
}
