#ifndef CCURL_H
#define CCURL_H
#include <curl/curl.h>
#include <stddef.h>

// Small non-variadic wrappers around libcurl for Swift (curl_easy_setopt/getinfo are variadic).
// One transfer = one `ccurl_transfer`: the C side collects the body and the raw header lines,
// and a progress callback aborts the transfer once `ccurl_transfer_cancel` was called.

/// curl_global_init(CURL_GLOBAL_DEFAULT); call once per process before anything else.
int ccurl_global_init(void);

/// A reusable easy handle (keeps its connection alive between transfers).
CURL *ccurl_easy_new(void);
void ccurl_easy_free(CURL *handle);

typedef struct ccurl_request {
    const char *method;          // "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"
    const char *url;
    const char *const *headers;  // "Name: value" lines
    size_t header_count;
    const void *body;            // may be NULL
    size_t body_len;
    long connect_timeout_ms;
    long timeout_ms;
    const char *ca_file;         // may be NULL
    const char *user_agent;      // may be NULL
} ccurl_request;

typedef struct ccurl_transfer ccurl_transfer;

ccurl_transfer *ccurl_transfer_new(void);
void ccurl_transfer_free(ccurl_transfer *t);
/// Thread-safe: asks a running transfer to stop (it ends with CURLE_ABORTED_BY_CALLBACK).
void ccurl_transfer_cancel(ccurl_transfer *t);

/// Runs the transfer on `handle` (blocking). Returns the CURLcode (0 on success).
int ccurl_perform(CURL *handle, ccurl_transfer *t, const ccurl_request *req);

long ccurl_transfer_status(const ccurl_transfer *t);
const char *ccurl_transfer_body(const ccurl_transfer *t, size_t *len);
const char *ccurl_transfer_headers(const ccurl_transfer *t, size_t *len);
/// libcurl's detailed error text for the last failure (may be empty), else curl_easy_strerror.
const char *ccurl_transfer_error(const ccurl_transfer *t);

/// errno of the failed connect (ECONNREFUSED, …), 0 when none.
long ccurl_transfer_os_errno(const ccurl_transfer *t);

/// 1 when the transfer timed out after its request was sent, before the whole reply came.
int ccurl_transfer_no_reply(const ccurl_transfer *t);

/// True for codes that mean the URL itself is wrong (malformed, unsupported scheme).
int ccurl_code_is_invalid_url(int code);

#endif
