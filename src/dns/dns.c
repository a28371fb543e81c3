/* The resolver of dns.h on libunbound: one context per event loop, resolving in
 * a thread of its own (ub_ctx_async), its answers read on the loop when the
 * context's descriptor is readable (ub_process). docs/dns.md says how the
 * resolver and DNSSEC validation are chosen. */
#include "dns/dns.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>

#include "core/config.h"

/* libunbound's caches (TTLs respected), kept small: a mail server asks about
 * a few thousand names, not millions. */
#define DNS_MSG_CACHE "1m"
#define DNS_RRSET_CACHE "2m"
#define DNS_KEY_CACHE "1m"
/* answers are not kept longer than this, whatever their TTL (the same caps
 * as libunbound's cache-max-ttl and cache-max-negative-ttl) */
#define DNS_TTL_MAX 86400
#define DNS_NEGATIVE_TTL_MAX 3600
/* nameserver lines read from resolv.conf */
#define DNS_RESOLV_CONF_MAX 8

struct dns_resolver {
	struct ub_ctx *ub;
	struct event *ev;
	struct event_base *base;
	bool validating;
	unsigned timeout;
	struct dns_query *pending; /* doubly linked */
};

struct dns_query {
	struct dns_resolver *r;
	struct dns_query *next, *prev;
	struct dns_query **handle; /* the caller's pointer, cleared when done */
	struct event *timer;
	int async_id;
	enum dns_type type;
	dns_cb *cb;
	void *ctx;
};

static char *dns_strdup_error(const char *fmt, const char *a, const char *b)
{
	char buf[512];
	snprintf(buf, sizeof(buf), fmt, a, b);
	return strdup(buf);
}

static void dns_query_unlink(struct dns_query *q)
{
	struct dns_resolver *r = q->r;
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		r->pending = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	if (q->handle != NULL)
		*q->handle = NULL;
	if (q->timer != NULL)
		event_free(q->timer);
	free(q);
}

static void dns_deliver(struct dns_query *q, struct dns_answer *a)
{
	dns_cb *cb = q->cb;
	void *ctx = q->ctx;

	/* unlinked first: the callback may start new lookups */
	dns_query_unlink(q);
	cb(ctx, a);
}

static const char *dns_rcode_why(int rcode)
{
	switch (rcode) {
	case 1:
		return "FORMERR";
	case 2:
		return "SERVFAIL";
	case 4:
		return "NOTIMP";
	case 5:
		return "REFUSED";
	}
	return "error response";
}

static void dns_ub_done(void *mydata, int err, struct ub_result *res)
{
	struct dns_query *q = mydata;
	struct dns_answer a = {.type = q->type, .status = DNS_TEMPFAIL};

	if (err != 0 || res == NULL) {
		a.why = ub_strerror(err);
	} else {
		a.rcode = res->rcode;
		a.ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
		/* RFC 2308 5: a negative answer without an SOA in its authority
		 * section is not to be kept at all; one with is kept for a while
		 * at most */
		if (res->nxdomain || !res->havedata) {
			const uint8_t *pkt = res->answer_packet;
			bool soa = res->answer_len >= 12 && pkt != NULL && (pkt[8] | pkt[9]) != 0;
			if (!soa)
				a.ttl = 0;
			else if (a.ttl > DNS_NEGATIVE_TTL_MAX)
				a.ttl = DNS_NEGATIVE_TTL_MAX;
		} else if (a.ttl > DNS_TTL_MAX)
			a.ttl = DNS_TTL_MAX;
		a.security = res->secure ? DNS_SECURE : res->bogus ? DNS_BOGUS : DNS_INSECURE;
		if (a.security == DNS_BOGUS) {
			/* RFC 4035 5.5: bogus data is not used; callers see the state */
			a.why =
			    res->why_bogus != NULL ? res->why_bogus : "DNSSEC validation failed";
		} else if (res->nxdomain) {
			a.status = DNS_NXDOMAIN;
		} else if (res->rcode != 0) {
			a.why = dns_rcode_why(res->rcode);
		} else if (!res->havedata) {
			a.status = DNS_NODATA;
		} else {
			size_t n = 0;
			while (res->data[n] != NULL)
				n++;
			if (dns_answer_parse(&a, q->type, res->data, res->len, n) == 1)
				a.status = DNS_OK;
			else
				a.why = "malformed record in the answer";
		}
	}
	dns_deliver(q, &a);
	dns_answer_clear(&a);
	ub_resolve_free(res);
}

static void dns_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_answer a = {.type = q->type, .status = DNS_TEMPFAIL, .why = "timed out"};

	(void)fd, (void)what;
	ub_cancel(q->r->ub, q->async_id);
	dns_deliver(q, &a);
}

static void dns_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;
	(void)fd, (void)what;
	ub_process(r->ub);
}

static int dns_set(struct ub_ctx *ub, const char *opt, const char *val, char **error_r)
{
	int rc = ub_ctx_set_option(ub, opt, val);
	if (rc != 0) {
		*error_r = dns_strdup_error("resolver option %s %s failed", opt, ub_strerror(rc));
		return -1;
	}
	return 1;
}

/* "IP:port" or "[IPv6]:port" to libunbound's "IP@port". */
static int dns_forward_to(struct ub_ctx *ub, const char *hostport, char **error_r)
{
	char *host = NULL, at[128];
	unsigned port = 53;
	int rc;

	if (config_parse_hostport(hostport, &host, &port) < 0) {
		*error_r = dns_strdup_error("bad resolver address '%s'%s", hostport, "");
		return -1;
	}
	snprintf(at, sizeof(at), "%s@%u", host, port);
	free(host);
	rc = ub_ctx_set_fwd(ub, at);
	if (rc != 0) {
		*error_r = dns_strdup_error("resolver %s: %s", hostport, ub_strerror(rc));
		return -1;
	}
	return 1;
}

/* The nameserver lines of resolv.conf as forwarders; the number set, -1 error. */
static int dns_forward_resolv_conf(struct ub_ctx *ub, const char *path, char **error_r)
{
	FILE *f = fopen(path, "r");
	char line[512];
	int n = 0;

	if (f == NULL)
		return errno == ENOENT
		           ? 0
		           : (*error_r = dns_strdup_error("%s: %s", path, strerror(errno)), -1);
	while (n < DNS_RESOLV_CONF_MAX && fgets(line, sizeof(line), f) != NULL) {
		char addr[256];
		if (sscanf(line, " nameserver %255s", addr) != 1)
			continue;
		char *pct = strchr(addr, '%'); /* a scope id: libunbound takes none */
		if (pct != NULL)
			*pct = '\0';
		if (ub_ctx_set_fwd(ub, addr) == 0)
			n++;
	}
	fclose(f);
	return n;
}

int dns_resolver_new(struct event_base *base, const struct dns_options *opts,
                     struct dns_resolver **r_r, char **error_r)
{
	struct dns_resolver *r = calloc(1, sizeof(*r));
	const char *anchor = opts->trust_anchor;
	bool recursive = false;
	int rc;

	*r_r = NULL;
	*error_r = NULL;
	if (r == NULL) {
		*error_r = strdup("out of memory");
		return -1;
	}
	r->base = base;
	r->timeout = opts->timeout != 0 ? opts->timeout : DNS_TIMEOUT_DEFAULT;
	r->ub = ub_ctx_create();
	if (r->ub == NULL) {
		*error_r = strdup("cannot create a resolver context");
		goto fail;
	}
	if (dns_set(r->ub, "msg-cache-size:", DNS_MSG_CACHE, error_r) < 0 ||
	    dns_set(r->ub, "rrset-cache-size:", DNS_RRSET_CACHE, error_r) < 0 ||
	    dns_set(r->ub, "key-cache-size:", DNS_KEY_CACHE, error_r) < 0 ||
	    dns_set(r->ub, "cache-max-ttl:", "86400", error_r) < 0 ||
	    dns_set(r->ub, "cache-max-negative-ttl:", "3600", error_r) < 0)
		goto fail;
	if (opts->resolver != NULL && strcmp(opts->resolver, "recursive") == 0) {
		recursive = true;
	} else if (opts->resolver != NULL) {
		if (dns_forward_to(r->ub, opts->resolver, error_r) < 0)
			goto fail;
	} else {
		rc = dns_forward_resolv_conf(
		    r->ub, opts->resolv_conf != NULL ? opts->resolv_conf : "/etc/resolv.conf",
		    error_r);
		if (rc < 0)
			goto fail;
		recursive = rc == 0;
	}
	if (!recursive) {
		/* A forwarder answers for every name, loopback and private ranges and
		 * the test. domain included (local test zones): libunbound's
		 * built-in answers for those would hide its data, and it must be
		 * reachable on a loopback address. */
		static const char *const zones[] = {
		    "test. transparent", "127.in-addr.arpa. transparent",
		    "10.in-addr.arpa. transparent", "168.192.in-addr.arpa. transparent",
		    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. "
		    "transparent"};
		if (dns_set(r->ub, "do-not-query-localhost:", "no", error_r) < 0)
			goto fail;
		for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
			if (dns_set(r->ub, "local-zone:", zones[i], error_r) < 0)
				goto fail;
	}
	if (anchor == NULL && recursive)
		anchor = DNS_ROOT_KEY;
	if (anchor != NULL) {
		/* libunbound reads the file only at the first lookup: say now */
		FILE *f = fopen(anchor, "r");
		if (f == NULL) {
			*error_r = dns_strdup_error("trust anchor %s: %s", anchor, strerror(errno));
			goto fail;
		}
		fclose(f);
		rc = ub_ctx_add_ta_file(r->ub, anchor);
		if (rc != 0) {
			*error_r = dns_strdup_error("trust anchor %s: %s", anchor, ub_strerror(rc));
			goto fail;
		}
		r->validating = true;
	}
	rc = ub_ctx_async(r->ub, 1);
	if (rc != 0) {
		*error_r = dns_strdup_error("resolver thread: %s%s", ub_strerror(rc), "");
		goto fail;
	}
	/* ub_fd finalizes the context: option errors (an unreadable anchor) show
	 * up on the first lookup, so resolve nothing yet but check it exists */
	r->ev = event_new(base, ub_fd(r->ub), EV_READ | EV_PERSIST, dns_readable, r);
	if (r->ev == NULL || event_add(r->ev, NULL) < 0) {
		*error_r = strdup("cannot watch the resolver");
		goto fail;
	}
	*r_r = r;
	return 1;
fail:
	if (*error_r == NULL)
		*error_r = strdup("out of memory");
	dns_resolver_free(&r);
	return -1;
}

void dns_resolver_free(struct dns_resolver **rp)
{
	struct dns_resolver *r = *rp;
	if (r == NULL)
		return;
	while (r->pending != NULL) {
		ub_cancel(r->ub, r->pending->async_id);
		dns_query_unlink(r->pending);
	}
	if (r->ev != NULL)
		event_free(r->ev);
	if (r->ub != NULL)
		ub_ctx_delete(r->ub);
	free(r);
	*rp = NULL;
}

bool dns_resolver_validating(const struct dns_resolver *r)
{
	return r->validating;
}

int dns_lookup(struct dns_resolver *r, const char *name, enum dns_type type, dns_cb *cb, void *ctx,
               struct dns_query **q_r, char **error_r)
{
	struct dns_query *q;
	int rc;

	*error_r = NULL;
	if (q_r != NULL)
		*q_r = NULL;
	if (dns_name_check(name) != 1) {
		*error_r = strdup("not a valid domain name");
		return -1;
	}
	if (strcmp(dns_type_name(type), "?") == 0) {
		*error_r = strdup("unsupported record type");
		return -1;
	}
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		*error_r = strdup("out of memory");
		return -1;
	}
	q->r = r;
	q->type = type;
	q->cb = cb;
	q->ctx = ctx;
	q->timer = evtimer_new(r->base, dns_timeout, q);
	struct timeval tv = {.tv_sec = r->timeout};
	if (q->timer == NULL || evtimer_add(q->timer, &tv) < 0) {
		if (q->timer != NULL)
			event_free(q->timer);
		free(q);
		*error_r = strdup("out of memory");
		return -1;
	}
	rc = ub_resolve_async(r->ub, name, (int)type, 1 /* IN */, q, dns_ub_done, &q->async_id);
	if (rc != 0) {
		event_free(q->timer);
		free(q);
		*error_r = dns_strdup_error("lookup failed: %s%s", ub_strerror(rc), "");
		return -1;
	}
	q->next = r->pending;
	if (r->pending != NULL)
		r->pending->prev = q;
	r->pending = q;
	if (q_r != NULL) {
		*q_r = q;
		q->handle = q_r;
	}
	return 1;
}

void dns_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;
	if (q == NULL)
		return;
	ub_cancel(q->r->ub, q->async_id);
	dns_query_unlink(q); /* clears *qp through q->handle */
	*qp = NULL;
}
