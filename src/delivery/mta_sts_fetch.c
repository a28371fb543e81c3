/* MTA-STS, the asynchronous part: which policy applies to a domain now
 * (RFC 8461 5.1 discovery, 3.3 fetching, the cache in the store). See
 * mta_sts.h for the contract and docs/delivery.md for the behaviour.
 *
 * One query walks these steps, each started from the previous one's callback
 * on the context's loop, none blocking it:
 *   TXT    _mta-sts.DOMAIN through hermod's resolver
 *   CACHE  store_mta_sts_get on the worker pool
 *   ADDR   mta-sts.DOMAIN A, then AAAA when there is no A (only for a fetch)
 *   HTTP   GET /.well-known/mta-sts.txt over TLS (https_client.h: the address
 *          of mta-sts.DOMAIN, the certificate verified for that name)
 *   STORE  store_mta_sts_put of the fetched policy on the worker pool
 * A store job belongs to the pool until its completion ran: a query that goes
 * away (cancel, free) only unhooks itself from the job, whose completion then
 * frees the job and nothing else. */
#include "delivery/mta_sts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/dict.h"
#include "core/str.h"
#include "core/worker.h"
#include "delivery/https_client.h"
#include "dns/dns.h"
#include "store/store.h"

#define STS_PATH "/.well-known/mta-sts.txt" /* RFC 8461 3.2 */
#define STS_REASON_MAX 512

struct mta_sts_ctx {
	struct event_base *base;
	struct dns_resolver *r;
	struct worker_pool *pool;
	struct worker_inbox *inbox;
	struct store *st;
	SSL_CTX *ssl_ctx;
	unsigned port;
	unsigned fetch_timeout;        /* seconds */
	struct mta_sts_query *queries; /* pending ones */
	/* domains without a TXT record whose cache row was found missing, until
	 * when that is believed (their next lookups skip the store read) */
	struct dict *absent;
};

#define STS_ABSENT_MAX 4096
#define STS_ABSENT_SECS 600

/* A store call on the pool. q is touched on the loop only. */
struct sts_job {
	struct mta_sts_query *q; /* NULL once the query has gone */
	struct store *st;
	bool put;
	char domain[MTA_STS_NAME_MAX + 1];
	struct store_mta_sts row; /* get: the result; put: what to store (owned) */
	int rc;
	char *error;
};

enum sts_txt {
	STS_TXT_VALID,    /* one valid STSv1 record: txt_id */
	STS_TXT_NONE,     /* none, or none valid (RFC 8461 3.1): txt_why */
	STS_TXT_TEMPFAIL, /* no answer now: txt_why */
};

struct mta_sts_query {
	struct mta_sts_ctx *ctx;
	struct mta_sts_query *prev, *next;
	bool linked; /* on ctx->queries */
	mta_sts_cb *cb;
	void *cb_ctx;
	char domain[MTA_STS_NAME_MAX + 1];
	char host[MTA_STS_NAME_MAX + 10]; /* mta-sts.DOMAIN */

	struct dns_query *dq;
	struct sts_job *job;

	enum sts_txt txt;
	char txt_id[MTA_STS_ID_MAX + 1];
	char txt_why[STS_REASON_MAX];

	bool have_cached;
	struct mta_sts_policy cached;

	/* the fetch */
	struct https_request *req;
	struct mta_sts_policy fetched;
};

static void sts_fetch_fail(struct mta_sts_query *q, const char *why);

/* ---- the context ---- */

struct mta_sts_ctx *mta_sts_new(struct event_base *base, struct dns_resolver *r,
                                struct worker_pool *pool, struct worker_inbox *inbox,
                                struct store *st, const char *ca_file, unsigned port,
                                char **error_r)
{
	struct mta_sts_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL) {
		str_error(error_r, "out of memory");
		return NULL;
	}
	ctx->base = base;
	ctx->r = r;
	ctx->pool = pool;
	ctx->inbox = inbox;
	ctx->st = st;
	ctx->port = port != 0 ? port : 443;
	ctx->fetch_timeout = MTA_STS_FETCH_TIMEOUT;
	/* RFC 8461 3.3: the policy host's certificate MUST be valid for
	 * mta-sts.DOMAIN and chain to a trusted root */
	ctx->ssl_ctx = https_ssl_ctx_new(ca_file, error_r);
	if (ctx->ssl_ctx == NULL) {
		free(ctx);
		return NULL;
	}
	ctx->absent = dict_new(sizeof(int64_t), STS_ABSENT_MAX, DICT_EVICT);
	if (ctx->absent == NULL) {
		SSL_CTX_free(ctx->ssl_ctx);
		str_error(error_r, "out of memory");
		free(ctx);
		return NULL;
	}
	return ctx;
}

static void sts_query_free(struct mta_sts_query *q);

void mta_sts_free(struct mta_sts_ctx **ctxp)
{
	struct mta_sts_ctx *ctx = *ctxp;

	if (ctx == NULL)
		return;
	*ctxp = NULL;
	while (ctx->queries != NULL)
		sts_query_free(ctx->queries);
	SSL_CTX_free(ctx->ssl_ctx);
	dict_free(&ctx->absent);
	free(ctx);
}

/* ---- the query's life ---- */

static void sts_fetch_cleanup(struct mta_sts_query *q)
{
	dns_cancel(&q->dq);
	https_request_cancel(&q->req);
}

static void sts_unlink(struct mta_sts_query *q)
{
	if (!q->linked)
		return;
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->ctx->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
	q->linked = false;
}

/* Frees q and whatever it has in flight; touches q->ctx only while linked. */
static void sts_query_free(struct mta_sts_query *q)
{
	sts_fetch_cleanup(q);
	if (q->job != NULL) {
		q->job->q = NULL; /* its completion frees it */
		q->job = NULL;
	}
	sts_unlink(q);
	free(q);
}

/* The end: the callback, then the query is freed. q is off the context's list
 * before the callback, which may start lookups, cancel others or even free the
 * context. */
static void sts_finish(struct mta_sts_query *q, const struct mta_sts_policy *pol, const char *fmt,
                       const char *arg)
{
	char reason[STS_REASON_MAX + 64];

	snprintf(reason, sizeof(reason), fmt, arg != NULL ? arg : "");
	sts_fetch_cleanup(q);
	sts_unlink(q);
	q->cb(q->cb_ctx, pol, reason);
	sts_query_free(q);
}

/* ---- store jobs ---- */

static void sts_job_run(void *arg)
{
	struct sts_job *job = arg;

	if (job->put)
		job->rc = store_mta_sts_put(job->st, &job->row, &job->error);
	else
		job->rc = store_mta_sts_get(job->st, job->domain, &job->row, &job->error);
}

static void sts_after_cache(struct mta_sts_query *q, struct sts_job *job);
static void sts_after_put(struct mta_sts_query *q, struct sts_job *job);

static void sts_job_done(void *arg)
{
	struct sts_job *job = arg;
	struct mta_sts_query *q = job->q;

	if (q != NULL) {
		q->job = NULL;
		if (!job->put && job->rc == 0) {
			int64_t *until =
			    dict_put(q->ctx->absent, job->domain, strlen(job->domain), NULL);
			if (until != NULL)
				*until = (int64_t)time(NULL) + STS_ABSENT_SECS;
		}
		if (job->put)
			sts_after_put(q, job);
		else
			sts_after_cache(q, job);
	}
	store_mta_sts_clear(&job->row);
	free(job->error);
	free(job);
}

/* Submits a get (policy NULL) or a put. 1 ok, -1 out of memory. */
static int sts_job_start(struct mta_sts_query *q, const char *policy, int64_t now)
{
	struct sts_job *job = calloc(1, sizeof(*job));

	if (job == NULL)
		return -1;
	job->q = q;
	job->st = q->ctx->st;
	job->put = policy != NULL;
	snprintf(job->domain, sizeof(job->domain), "%s", q->domain);
	if (job->put)
		dict_delete(q->ctx->absent, q->domain, strlen(q->domain));
	if (job->put) {
		job->row.domain = strdup(q->domain);
		job->row.id = strdup(q->txt_id);
		job->row.policy = strdup(policy);
		job->row.fetched = now;
		job->row.expires = now + (int64_t)q->fetched.max_age;
	}
	if ((job->put &&
	     (job->row.domain == NULL || job->row.id == NULL || job->row.policy == NULL)) ||
	    worker_pool_submit(q->ctx->pool, q->ctx->inbox, sts_job_run, sts_job_done, job) < 0) {
		store_mta_sts_clear(&job->row);
		free(job);
		return -1;
	}
	q->job = job;
	return 1;
}

/* ---- TXT and the cache ---- */

static void sts_fetch_start(struct mta_sts_query *q);

static void sts_on_txt(void *arg, const struct dns_answer *a)
{
	struct mta_sts_query *q = arg;
	const char *why = NULL;

	q->dq = NULL;
	switch (a->status) {
	case DNS_OK: {
		int rc = mta_sts_txt_select(a->txt, a->n, q->txt_id, &why);
		q->txt = rc > 0 ? STS_TXT_VALID : STS_TXT_NONE;
		snprintf(q->txt_why, sizeof(q->txt_why), "%s",
		         rc == 0       ? "no STSv1 TXT record"
		         : why != NULL ? why
		                       : "");
		break;
	}
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		q->txt = STS_TXT_NONE;
		snprintf(q->txt_why, sizeof(q->txt_why), "no TXT record");
		break;
	case DNS_TEMPFAIL:
		q->txt = STS_TXT_TEMPFAIL;
		snprintf(q->txt_why, sizeof(q->txt_why), "DNS: %s",
		         a->why != NULL ? a->why : "temporary failure");
		break;
	}
	/* no TXT record and, a moment ago, no cached policy: most domains, and
	 * no store read for them each time */
	int64_t *until = q->txt == STS_TXT_NONE
	                     ? dict_get(q->ctx->absent, q->domain, strlen(q->domain))
	                     : NULL;
	if ((until != NULL && *until > (int64_t)time(NULL)) || sts_job_start(q, NULL, 0) < 0)
		sts_after_cache(q, NULL); /* as if nothing were cached */
}

static void sts_after_cache(struct mta_sts_query *q, struct sts_job *job)
{
	int64_t now = time(NULL);
	const char *why = NULL;

	/* a store error counts as nothing cached: the fetch decides */
	if (job != NULL && job->rc == 1 && job->row.expires > now &&
	    mta_sts_policy_parse(job->row.policy, strlen(job->row.policy), &q->cached, &why) == 1) {
		snprintf(q->cached.id, sizeof(q->cached.id), "%s", job->row.id);
		q->cached.expires = job->row.expires;
		q->have_cached = true;
	}
	switch (q->txt) {
	case STS_TXT_VALID:
		/* RFC 8461 5.1: the same id: the cached policy is current */
		if (q->have_cached && strcmp(q->cached.id, q->txt_id) == 0) {
			sts_finish(q, &q->cached, "cached", NULL);
			return;
		}
		sts_fetch_start(q);
		return;
	case STS_TXT_NONE:
	case STS_TXT_TEMPFAIL:
		/* RFC 8461 5.1: no valid TXT record, a cached policy is used */
		if (q->have_cached)
			sts_finish(q, &q->cached, "cached (%s)", q->txt_why);
		else
			sts_finish(q, NULL, "%s", q->txt_why);
		return;
	}
}

static void sts_after_put(struct mta_sts_query *q, struct sts_job *job)
{
	if (job->rc == 1)
		sts_finish(q, &q->fetched, "fetched", NULL);
	else
		sts_finish(q, &q->fetched, "fetched (not cached: %s)",
		           job->error != NULL ? job->error : "store error");
}

/* ---- the fetch ---- */

static void sts_fetch_fail(struct mta_sts_query *q, const char *why)
{
	/* RFC 8461 5.1: a policy that cannot be fetched: the cached one, if any */
	if (q->have_cached)
		sts_finish(q, &q->cached, "cached (fetch failed: %s)", why);
	else
		sts_finish(q, NULL, "fetch failed: %s", why);
}

/* RFC 8461 3.3: the media type MUST be text/plain (parameters allowed). */
static bool sts_ctype_plain(const char *v)
{
	while (*v == ' ' || *v == '\t')
		v++;
	if (strncasecmp(v, "text/plain", 10) != 0)
		return false;
	v += 10;
	return *v == '\0' || *v == ';' || *v == ' ' || *v == '\t';
}

static void sts_on_fetched(void *arg, const struct https_response *res)
{
	struct mta_sts_query *q = arg;
	char why[STS_REASON_MAX];
	const char *perr = NULL;

	q->req = NULL;
	if (res->error != NULL) {
		sts_fetch_fail(q, res->error);
		return;
	}
	/* RFC 8461 3.3: HTTP 200 only; redirects are not followed */
	if (res->status != 200) {
		snprintf(why, sizeof(why), "HTTP status %d", res->status);
		sts_fetch_fail(q, why);
		return;
	}
	if (res->ctype == NULL || !sts_ctype_plain(res->ctype)) {
		if (res->ctype == NULL)
			snprintf(why, sizeof(why), "no Content-Type (text/plain required)");
		else
			snprintf(why, sizeof(why), "Content-Type %.63s (text/plain required)",
			         res->ctype);
		sts_fetch_fail(q, why);
		return;
	}
	if (mta_sts_policy_parse(res->body, res->body_len, &q->fetched, &perr) < 0) {
		sts_fetch_fail(q, perr);
		return;
	}
	int64_t now = time(NULL);
	snprintf(q->fetched.id, sizeof(q->fetched.id), "%s", q->txt_id);
	q->fetched.expires = now + (int64_t)q->fetched.max_age;
	/* RFC 8461 5.1: a new policy is cached and used */
	if (sts_job_start(q, res->body, now) < 0)
		sts_finish(q, &q->fetched, "fetched (not cached: out of memory)", NULL);
}

static void sts_fetch_start(struct mta_sts_query *q)
{
	char *error = NULL;
	char why[STS_REASON_MAX];
	struct https_request_params hp = {
	    .base = q->ctx->base,
	    .dns = q->ctx->r,
	    .ssl_ctx = q->ctx->ssl_ctx,
	    /* RFC 8461 3.3: SNI and the certificate's name are mta-sts.DOMAIN */
	    .host = q->host,
	    .port = q->ctx->port,
	    .path = STS_PATH,
	    .method = "GET",
	    .accept = "text/plain",
	    .host_header = q->host,
	    .timeout = q->ctx->fetch_timeout,
	    .max_body = MTA_STS_BODY_MAX,
	    .max_headers = MTA_STS_HEADERS_MAX,
	};

	if (https_request_start(&hp, sts_on_fetched, q, &q->req, &error) < 0) {
		snprintf(why, sizeof(why), "%s: %s", q->host, error != NULL ? error : "?");
		free(error);
		sts_fetch_fail(q, why);
	}
}

/* ---- the interface ---- */

int mta_sts_lookup(struct mta_sts_ctx *ctx, const char *domain, mta_sts_cb *cb, void *cb_ctx,
                   struct mta_sts_query **q_r, char **error_r)
{
	char name[DNS_NAME_MAX + 32];
	size_t len = strlen(domain);
	struct mta_sts_query *q;

	if (q_r != NULL)
		*q_r = NULL;
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len == 0 || len > MTA_STS_NAME_MAX - 9 || dns_name_check(domain) != 1) {
		/* room for "_mta-sts." within 253 octets */
		if (error_r != NULL && asprintf(error_r, "invalid domain name for MTA-STS") < 0)
			*error_r = NULL;
		return -1;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		str_error(error_r, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		char c = domain[i];
		q->domain[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	q->domain[len] = '\0';
	snprintf(q->host, sizeof(q->host), "mta-sts.%s", q->domain);
	snprintf(name, sizeof(name), "_mta-sts.%s", q->domain);
	q->ctx = ctx;
	q->cb = cb;
	q->cb_ctx = cb_ctx;
	q->next = ctx->queries;
	if (q->next != NULL)
		q->next->prev = q;
	ctx->queries = q;
	q->linked = true;
	/* RFC 8461 3.1: the TXT record at _mta-sts.DOMAIN */
	char *error = NULL;
	if (dns_lookup(ctx->r, name, DNS_TYPE_TXT, sts_on_txt, q, &q->dq, &error) < 0) {
		sts_query_free(q);
		if (error_r != NULL)
			*error_r = error;
		else
			free(error);
		return -1;
	}
	if (q_r != NULL)
		*q_r = q;
	return 1;
}

void mta_sts_set_fetch_timeout(struct mta_sts_ctx *ctx, unsigned seconds)
{
	ctx->fetch_timeout = seconds > 0 ? seconds : MTA_STS_FETCH_TIMEOUT;
}

void mta_sts_cancel(struct mta_sts_query **q)
{
	if (q == NULL || *q == NULL)
		return;
	sts_query_free(*q);
	*q = NULL;
}
