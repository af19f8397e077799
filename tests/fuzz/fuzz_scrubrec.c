/* fuzz_scrubrec.c - libFuzzer target for the scrub's records (storaged/scrubrec.c).
 *
 * The input is one record, tried as a damaged object and as the state.
 * Beyond "no crash, no read outside the input": an accepted record's strings
 * lie inside it, and re-encoding it gives the same bytes (a state record
 * of the older form without the trailer: the same bytes and a zero trailer;
 * one in the losers' walk: its position within bounds). */
#include <stdlib.h>
#include "fuzz.h"
#include "storaged/scrubrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[SCRUBREC_STATE_MAX > SCRUBREC_QUARANTINE_MAX ? SCRUBREC_STATE_MAX : SCRUBREC_QUARANTINE_MAX];
    scrubrec_quarantine_t q;
    static scrubrec_state_t s;
    scrubrec_damaged_t d;

    if (scrubrec_damaged_decode(data, size, &d) == 0) {
        FUZZ_CHECK((const uint8_t *)d.key + d.klen == data + size);
        FUZZ_CHECK((const uint8_t *)d.origin >= data && (const uint8_t *)d.bucket > (const uint8_t *)d.origin);
        FUZZ_CHECK(scrubrec_damaged_encode(out, &d) == size && memcmp(out, data, size) == 0);
    }
    if (scrubrec_quarantine_decode(data, size, &q) == 0)
        FUZZ_CHECK(scrubrec_quarantine_encode(out, &q) == size && memcmp(out, data, size) == 0);
    if (scrubrec_state_decode(data, size, &s) == 0) {
        FUZZ_CHECK(s.pos_len <= SCRUBREC_POS_MAX && s.lpos_len <= SCRUBREC_LPOS_MAX && (s.losers || s.lpos_len == 0));
        /* a record without the trailer (the older form) comes back with one of zeros */
        size_t n = scrubrec_state_encode(out, &s);
        FUZZ_CHECK(n == size || (n == size + SCRUBREC_STATE_TRAILER && s.cur.repaired == 0 && s.last.repaired == 0));
        FUZZ_CHECK(memcmp(out, data, size) == 0);
    }
    return 0;
}
