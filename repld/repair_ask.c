/* repair_ask.c - repld's request to its storaged to check and repair a damaged object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "common/buf.h"
#include "common/curlopt.h"
#include "common/log.h"
#include "proto/logrec.h"
#include "repld/repair_ask.h"

#define REPAIR_ASK_URL_MAX (16 * 1024) /* public_url (capped by conf) and a percent-encoded bucket and key */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

void repair_ask(const conf_t *conf, const char *bucket, size_t blen, const char *key, size_t klen)
{
    curlopt_t co = {.agent = "comio-repld", .ca_file = conf->ca_file, .timeout_ms = REPAIR_ASK_TIMEOUT_MS};
    CURL *curl = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char *eb = NULL, *ek = NULL, b_nul[LOGREC_BUCKET_MAX + 1], k_nul[LOGREC_KEY_MAX + 1];
    const char *error = NULL;
    long status = 0;
    buf_t url, auth;
    size_t ulen = strlen(conf->public_url);

    buf_init(&url, REPAIR_ASK_URL_MAX);
    buf_init(&auth, REPAIR_ASK_URL_MAX);
    snprintf(b_nul, sizeof(b_nul), "%.*s", (int)blen, bucket);
    snprintf(k_nul, sizeof(k_nul), "%.*s", (int)klen, key);
    if (curl == NULL || curlopt_apply(curl, &co) != 0 || (eb = curl_easy_escape(curl, bucket, (int)blen)) == NULL ||
        (ek = curl_easy_escape(curl, key, (int)klen)) == NULL) {
        error = "out of memory";
        goto out;
    }
    buf_printf(&url, "%.*s/admin/scrub?bucket=%s&key=%s", (int)(ulen > 0 && conf->public_url[ulen - 1] == '/' ? ulen - 1 : ulen),
               conf->public_url, eb, ek);
    buf_append(&url, "", 1); /* NUL-terminated for libcurl */
    if (conf->access_token != NULL) {
        buf_printf(&auth, "Authorization: Bearer %s", conf->access_token);
        buf_append(&auth, "", 1);
        if (auth.err == 0 && (hdrs = curl_slist_append(NULL, auth.data)) == NULL)
            auth.err = CIO_ENOMEM;
    }
    if (url.err != 0 || auth.err != 0) {
        error = "out of memory";
        goto out;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url.data);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        error = curl_easy_strerror(cc);
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 202 && status != 429)
        error = "storaged did not queue the check";
out:
    if (status == 429) {
        /* the object's last repair found no good copy: storaged asks again after its back-off, and so do our retries */
        log_msg(LOG_LVL_INFO, "storaged holds back the repair of a damaged object (its last repair found no good copy)", "bucket",
                b_nul, "key", k_nul, NULL);
    } else if (error != NULL) {
        char st[16];
        snprintf(st, sizeof(st), "%ld", status);
        log_msg(LOG_LVL_WARN, "cannot ask storaged to repair a damaged object (the scrub will find it)", "bucket", b_nul, "key",
                k_nul, "status", st, "error", error, NULL);
    } else {
        log_msg(LOG_LVL_INFO, "asked storaged to repair a damaged object", "bucket", b_nul, "key", k_nul, NULL);
    }
    curl_free(eb);
    curl_free(ek);
    curl_slist_free_all(hdrs);
    if (curl != NULL)
        curl_easy_cleanup(curl);
    buf_free(&url);
    buf_free(&auth);
}
