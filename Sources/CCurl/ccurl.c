#include "ccurl.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct ccurl_buf {
    char *data;
    size_t len;
    size_t cap;
    int overflow;
};

struct ccurl_transfer {
    atomic_int cancelled;
    long status;
    int code;
    long os_errno;
    int no_reply;
    struct ccurl_buf body;
    struct ccurl_buf headers;
    char errbuf[CURL_ERROR_SIZE];
};

// Caps that keep a misbehaving peer from filling the agent's memory.
#define CCURL_MAX_BODY (64u * 1024u * 1024u)
#define CCURL_MAX_HEADERS (256u * 1024u)

int ccurl_global_init(void) { return (int)curl_global_init(CURL_GLOBAL_DEFAULT); }

CURL *ccurl_easy_new(void) { return curl_easy_init(); }

void ccurl_easy_free(CURL *handle) {
    if (handle) curl_easy_cleanup(handle);
}

ccurl_transfer *ccurl_transfer_new(void) {
    ccurl_transfer *t = calloc(1, sizeof(*t));
    if (t) atomic_init(&t->cancelled, 0);
    return t;
}

void ccurl_transfer_free(ccurl_transfer *t) {
    if (!t) return;
    free(t->body.data);
    free(t->headers.data);
    free(t);
}

void ccurl_transfer_cancel(ccurl_transfer *t) {
    if (t) atomic_store(&t->cancelled, 1);
}

static size_t append(struct ccurl_buf *b, const char *p, size_t n, size_t max) {
    if (b->len + n > max) {
        b->overflow = 1;
        return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    ccurl_transfer *t = ud;
    size_t total = size * n;
    return append(&t->body, p, total, CCURL_MAX_BODY) == total ? total : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    ccurl_transfer *t = ud;
    size_t total = size * n;
    return append(&t->headers, p, total, CCURL_MAX_HEADERS) == total ? total : 0;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt; (void)dn; (void)ut; (void)un;
    ccurl_transfer *t = ud;
    return atomic_load(&t->cancelled) ? 1 : 0;
}

int ccurl_perform(CURL *h, ccurl_transfer *t, const ccurl_request *r) {
    struct curl_slist *list = NULL;
    CURLcode rc;

    // reset keeps the connection cache, so keep-alive survives between transfers.
    curl_easy_reset(h);
    t->errbuf[0] = 0;
    t->body.len = 0;
    t->headers.len = 0;
    t->status = 0;
    t->os_errno = 0;
    t->no_reply = 0;

    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (r->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, r->ca_file);
    if (r->user_agent) curl_easy_setopt(h, CURLOPT_USERAGENT, r->user_agent);

    const char *m = r->method;
    if (strcmp(m, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(m, "POST") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
        if (r->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        }
    }

    // "Expect:" turns off libcurl's 100-continue wait for larger bodies.
    list = curl_slist_append(list, "Expect:");
    for (size_t i = 0; i < r->header_count; i++) {
        struct curl_slist *next = curl_slist_append(list, r->headers[i]);
        if (next) list = next;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);

    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        t->status = status;
    } else {
        long os_errno = 0;
        curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
        t->os_errno = os_errno;
        // Timed out after the request went out, before the whole reply came: the server (or
        // what it waits for) is stuck or slow, which is not the same as unreachable.
        long sent = 0;
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
        t->no_reply = rc == CURLE_OPERATION_TIMEDOUT && sent > 0;
    }
    if (rc != CURLE_OK && t->errbuf[0] == 0) {
        strncpy(t->errbuf, curl_easy_strerror(rc), CURL_ERROR_SIZE - 1);
        t->errbuf[CURL_ERROR_SIZE - 1] = 0;
    }
    if (rc == CURLE_WRITE_ERROR && (t->body.overflow || t->headers.overflow)) {
        strncpy(t->errbuf, "response too large", CURL_ERROR_SIZE - 1);
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        strncpy(t->errbuf, "cancelled", CURL_ERROR_SIZE - 1);
    }
    // Unset the list before freeing it so the reused handle never points at freed memory.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(list);
    t->code = (int)rc;
    return (int)rc;
}

long ccurl_transfer_status(const ccurl_transfer *t) { return t->status; }

const char *ccurl_transfer_body(const ccurl_transfer *t, size_t *len) {
    *len = t->body.len;
    return t->body.data;
}

const char *ccurl_transfer_headers(const ccurl_transfer *t, size_t *len) {
    *len = t->headers.len;
    return t->headers.data;
}

const char *ccurl_transfer_error(const ccurl_transfer *t) { return t->errbuf; }

long ccurl_transfer_os_errno(const ccurl_transfer *t) { return t->os_errno; }

int ccurl_transfer_no_reply(const ccurl_transfer *t) { return t->no_reply; }

int ccurl_code_is_invalid_url(int code) {
    return code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL;
}
