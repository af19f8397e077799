/* fuzz_conflictrec.c - libFuzzer target for the conflict record (common/conflictrec.c): a kept loser's
 * value in the "conflicts" table, formats 1 to 3.
 *
 * The input is one record. Beyond "no crash, no read outside the input": an
 * accepted record is one conflict_put would write (conflictrec_valid), its
 * checksums' CRCs lie inside it and cover the loser's size, its strings are
 * NUL-terminated at their lengths and its metadata is a valid blob, and
 * re-encoding it gives the same bytes (one spelling per record). */
#include <stdlib.h>
#include "fuzz.h"
#include "common/conflictrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static conflict_t c;
    static uint8_t head[CONFLICTREC_HEAD_MAX];
    size_t hlen, slen;
    uint8_t *out;

    if (conflictrec_decode(data, size, &c) != 0)
        return 0;
    FUZZ_CHECK(conflictrec_valid(&c));
    FUZZ_CHECK(c.ctype[c.ctype_len] == '\0' && c.key[c.key_len] == '\0');
    FUZZ_CHECK(c.loser.origin[c.loser.origin_len] == '\0' && c.winner.origin[c.winner.origin_len] == '\0');
    FUZZ_CHECK(c.meta_len == 0 || objmeta_validate(c.meta, c.meta_len) == 0);
    if (c.has_sums) {
        FUZZ_CHECK(!c.deleted && c.sums.first == 0 && c.sums.size == c.size);
        FUZZ_CHECK(c.sums.n == blocksum_nblocks(c.size, c.sums.shift));
        FUZZ_CHECK(c.sums.crcs + 4 * c.sums.n == data + size && fuzz_inside(c.sums.crcs, 4 * c.sums.n, data, size));
    }
    hlen = conflictrec_encode_head(head, &c);
    slen = conflictrec_sums_len(&c);
    FUZZ_CHECK(hlen <= CONFLICTREC_HEAD_MAX && hlen + slen == size);
    out = malloc(size);
    FUZZ_CHECK(out != NULL);
    memcpy(out, head, hlen);
    if (slen > 0)
        conflictrec_encode_sums(out + hlen, &c);
    FUZZ_CHECK(memcmp(out, data, size) == 0);
    free(out);
    return 0;
}
