/* MTA-STS (RFC 8461): which TLS policy a recipient domain publishes for the
 * mail sent to it (docs/delivery.md, "MTA-STS").
 *
 * Two layers. The pure part (mta_sts.c, no I/O) parses the _mta-sts TXT record
 * (RFC 8461 3.1) and the policy file (3.2) and matches MX host names against
 * the policy's patterns (4.1). The asynchronous part (mta_sts_fetch.c) answers
 * "which policy applies to DOMAIN now" (5.1, 3.3): it looks the TXT record up
 * through hermod's resolver, takes a cached policy with the same id from the
 * store, or fetches https://mta-sts.DOMAIN/.well-known/mta-sts.txt (TLS with a
 * verified certificate for mta-sts.DOMAIN), validates and caches it. Enforcing
 * the policy (which MX hosts, TLS required) is the queue runner's. */
#ifndef HERMOD_DELIVERY_MTA_STS_H
#define HERMOD_DELIVERY_MTA_STS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dns_txt;
struct event_base;
struct dns_resolver;
struct worker_pool;
struct worker_inbox;
struct store;

#define MTA_STS_ID_MAX 32               /* RFC 8461 3.1: id = 1*32(ALPHA / DIGIT) */
#define MTA_STS_MX_MAX 64               /* mx patterns kept from one policy (ours) */
#define MTA_STS_NAME_MAX 253            /* an mx pattern, "*." included */
#define MTA_STS_BODY_MAX (64u * 1024)   /* RFC 8461 3.3: a policy is at most 64 KiB */
#define MTA_STS_MAX_AGE_MAX 31557600u   /* RFC 8461 3.2: about a year */
#define MTA_STS_TXT_MAX 1024            /* a TXT record considered (ours) */
#define MTA_STS_FETCH_TIMEOUT 60        /* seconds for DNS + HTTPS (RFC 8461 3.3) */
#define MTA_STS_HEADERS_MAX (8u * 1024) /* response headers (ours) */

enum mta_sts_mode {
	MTA_STS_MODE_NONE,    /* "none": treat the domain as having no policy */
	MTA_STS_MODE_TESTING, /* "testing": report failures (TLSRPT), deliver anyway */
	MTA_STS_MODE_ENFORCE, /* "enforce": matching MX hosts with verified TLS only */
};

/* A validated policy. Plain data (no pointers): copy it freely. */
struct mta_sts_policy {
	enum mta_sts_mode mode;
	uint32_t max_age; /* seconds, 0..MTA_STS_MAX_AGE_MAX */
	/* the id of the TXT record the policy was fetched under ("" from
	 * mta_sts_policy_parse; the lookup fills it in) */
	char id[MTA_STS_ID_MAX + 1];
	int64_t expires; /* unix seconds the cached copy is good until (lookup) */
	size_t nmx;
	/* lower-case, without a trailing dot; "*.example.com" kept as written */
	char mx[MTA_STS_MX_MAX][MTA_STS_NAME_MAX + 1];
};

/* ---- pure ---- */

/* One TXT record (data[0..len), the joined character-strings). 1: a valid
 * STSv1 record, id_r set (NUL-terminated); 0: not an MTA-STS record (does not
 * begin with "v=STSv1" followed by ';', WSP or the end: to be ignored, RFC 8461
 * 3.1); -1: it begins so but is malformed (no or a bad id, bad field), with
 * *error_r a static reason. */
int mta_sts_txt_parse(const char *data, size_t len, char id_r[MTA_STS_ID_MAX + 1],
                      const char **error_r);

/* The TXT records of _mta-sts.DOMAIN (RFC 8461 3.1): records that are not
 * STSv1 records are discarded; exactly one must remain and be valid. 1 ok
 * (id_r); 0 no STSv1 record; -1 several, or the one is malformed (*error_r). */
int mta_sts_txt_select(const struct dns_txt *txt, size_t n, char id_r[MTA_STS_ID_MAX + 1],
                       const char **error_r);

/* A policy file (RFC 8461 3.2): "key: value" lines ended by LF or CRLF (the
 * last may lack one; empty lines are skipped); version (STSv1), mode and
 * max_age required, the first occurrence of each counts; mx one or more
 * (optional for mode none), each ["*."] Domain; unknown keys ignored. Limits:
 * len <= MTA_STS_BODY_MAX, at most MTA_STS_MX_MAX mx lines, a pattern at most
 * MTA_STS_NAME_MAX octets. NUL, bare CR and non-ASCII octets outside extension
 * values are errors. 1 ok (*pol filled, id "" and expires 0), -1 with *error_r
 * a static reason. */
int mta_sts_policy_parse(const char *body, size_t len, struct mta_sts_policy *pol,
                         const char **error_r);

/* RFC 8461 4.1: pattern ("mail.example.com" or "*.example.com", lower-case as
 * the parser keeps them) matches host (case-insensitive, one trailing dot
 * ignored); "*." stands for exactly one leftmost label. */
bool mta_sts_pattern_match(const char *pattern, const char *host);
/* Whether host matches one of pol's mx patterns. */
bool mta_sts_mx_match(const struct mta_sts_policy *pol, const char *mx_host);

const char *mta_sts_mode_name(enum mta_sts_mode mode);

/* ---- the lookup (mta_sts_fetch.c) ---- */

struct mta_sts_ctx;
struct mta_sts_query;

/* Everything a lookup needs, on one loop: base and r (the resolver of that
 * loop), pool and inbox (store calls run on pool, report to inbox, which is
 * base's), st (the policy cache). ca_file: PEM CA bundle the policy hosts'
 * certificates must verify against, NULL the system store. port: of the
 * policy hosts (443). The caller keeps r, pool, inbox and st alive until the
 * context is freed and the pool has finished its jobs. NULL with *error_r
 * (malloc'd) when the CA file cannot be loaded. */
struct mta_sts_ctx *mta_sts_new(struct event_base *base, struct dns_resolver *r,
                                struct worker_pool *pool, struct worker_inbox *inbox,
                                struct store *st, const char *ca_file, unsigned port,
                                char **error_r);
/* Seconds a fetch (address lookup, connect, TLS, HTTP) may take for lookups
 * started from now on; 0: MTA_STS_FETCH_TIMEOUT. For tests. */
void mta_sts_set_fetch_timeout(struct mta_sts_ctx *ctx, unsigned seconds);
/* Cancels every pending lookup (their callbacks are not called) and frees.
 * NULL ok; sets *ctx to NULL. */
void mta_sts_free(struct mta_sts_ctx **ctx);

/* The result: pol NULL when no policy applies (none published, none valid,
 * nothing usable cached), else the policy (valid during the call only;
 * mode none is a policy too: the domain asked for no enforcement). reason is
 * short text for logs, valid during the call: "fetched", "cached", "cached
 * (fetch failed: HTTP status 404)", "no TXT record", "fetch failed: ...". */
typedef void mta_sts_cb(void *ctx, const struct mta_sts_policy *pol, const char *reason);

/* Starts finding the policy of domain (RFC 8461 5.1, 3.3):
 * - the TXT record _mta-sts.DOMAIN is looked up;
 * - a cached policy (store) that has not expired and has the TXT record's id
 *   is used as is ("cached");
 * - otherwise (other id, nothing cached) the policy is fetched, validated,
 *   cached with expires = now + max_age and used ("fetched");
 * - a fetch that fails falls back to an unexpired cached policy ("cached
 *   (fetch failed: ...)"), else no policy;
 * - no (valid) TXT record, or a temporary DNS failure: an unexpired cached
 *   policy is used ("cached (no TXT record)", "cached (DNS: ...)"), else no
 *   policy.
 * cb runs exactly once, later, on the context's loop (never from inside this
 * call), unless the lookup is cancelled. 1 ok with *q_r (may be NULL) for
 * mta_sts_cancel (invalid once cb has started); -1 with *error_r (malloc'd)
 * for an invalid domain name or out of memory (cb will not run). */
int mta_sts_lookup(struct mta_sts_ctx *ctx, const char *domain, mta_sts_cb *cb, void *cb_ctx,
                   struct mta_sts_query **q_r, char **error_r);
/* Cancels a pending lookup: cb will not run; DNS, HTTP and store work in
 * flight is abandoned safely. NULL ok; sets *q to NULL. Not for a lookup whose
 * callback has started. */
void mta_sts_cancel(struct mta_sts_query **q);

#endif
