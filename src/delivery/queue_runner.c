/* The outbound queue runner (queue_runner.h). */
#include "delivery/queue_runner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/log.h"
#include "core/str.h"
#include "core/worker.h"
#include "delivery/dsn.h"
#include "delivery/mta_sts.h"
#include "delivery/route.h"
#include "delivery/srs.h"
#include "delivery/tlsrpt.h"
#include "delivery/tlsrpt_count.h"
#include "delivery/tlsrpt_send.h"
#include "dns/dns.h"
#include "policy/dkim_sign.h"
#include "smtp/smtp_client_parse.h"
#include "smtp/smtp_client.h"
#include "store/store.h"

/* An entry is leased for this long; the runner releases every lease when it
 * starts (one process owns the queue), so this only matters if a lease is never
 * recorded. */
#define RUNNER_LEASE_SECS 3600
/* The queue is looked at at least this often: a cheap indexed read. New
 * entries wake the runner at once through the store's queue hook; a `hermod
 * queue flush` from another process is seen within this time. */
#define RUNNER_POLL_MAX 2
/* Addresses tried per MX host, MX hosts per destination (RFC 5321 5.1 asks
 * for a configurable limit; Postfix tries 5 hosts). */
#define RUNNER_ADDRS_MAX 8
#define RUNNER_HOSTS_MAX 10
/* An original larger than this is returned with its header only. */
#define RUNNER_DSN_FULL_MAX (1u << 20)
/* The message is read for DKIM signing in steps of this size. */
#define RUNNER_SIGN_STEP (128u << 10)
/* A connection whose messages are done is kept this long for the next one to
 * the same address, at most RUNNER_IDLE_MAX of them (Postfix keeps cached
 * connections 2 s by default). */
#define RUNNER_IDLE_SECS 5
#define RUNNER_IDLE_MAX 32
/* TLS report counts go to the store this often (when there are any). */
#define RUNNER_TLSRPT_FLUSH_SECS 5
/* The days that are over are reported this long after start, then hourly. */
#define RUNNER_TLSRPT_FIRST_SECS 60
#define RUNNER_TLSRPT_EVERY_SECS 3600

struct queue_runner;

struct qrcpt {
	char *addr;
	unsigned notify;
	char *orcpt;
	bool admin_bounce; /* state 'bounce': hermod queue bounce */
	char *last_reply;  /* from earlier attempts */
	/* this attempt */
	enum smtp_client_result result;
	char status[16];
	char *reply;
	bool remote;
	char *relay;
};

struct qdest;

struct qentry {
	struct queue_runner *r;
	struct qentry *next; /* in flight */
	int64_t id;
	char *sender, *blob_id, *envid;
	uint64_t size, trace_len;
	int64_t created;
	unsigned attempts;
	int body, ret;
	bool smtputf8;
	int tls; /* STORE_TLS_*: REQUIRETLS, TLS-Required: No */
	bool warned; /* the delay warning went already */
	struct store_blob_range range; /* the blob, past the trace fields */
	bool have_range;
	struct buf dkim; /* DKIM-Signature fields to send before the message */
	struct qrcpt *rcpts;
	size_t nrcpts;
	struct qdest **dests;
	size_t ndests, dests_left;
};

struct qdest {
	struct qentry *e;
	struct qdest *next_wait;
	struct qdest *next_active, *prev_active;
	char *domain;
	size_t *idx; /* recipients of e */
	size_t n;
	struct smtp_client_rcpt *crcpts;
	struct smtp_client_msg msg;
	bool active, waiting;
	/* routing */
	struct dns_query *q;
	char hosts[RUNNER_HOSTS_MAX][DNS_NAME_MAX + 1];
	size_t nhosts, hosti;
	unsigned port;
	struct sockaddr_storage addrs[RUNNER_ADDRS_MAX];
	socklen_t addrlens[RUNNER_ADDRS_MAX];
	size_t naddrs, addri;
	bool aaaa_done;
	/* TLS policy (docs/delivery.md): DNSSEC state of the MX answer and of the
	 * current host's addresses, its usable TLSA records */
	bool mx_secure, addr_secure;
	enum smtp_client_tls policy;
	const char *policy_label; /* in log lines: "dane", "mta-sts", ... */
	const char *policy_name;  /* in reasons: "DANE", "MTA-STS", "REQUIRETLS" */
	struct dns_tlsa *tlsa;
	size_t ntlsa;
	bool policy_failed; /* some host failed the policy: the defer says so */
	/* MTA-STS (RFC 8461): looked up beside the MX records; the policy when one
	 * applies (mode testing or enforce) */
	struct mta_sts_query *sts_q;
	bool sts_wait, mx_ready;
	struct mta_sts_policy *sts;
	struct smtp_client *client;
	bool tls_off;
	bool fresh; /* do not take a kept connection (one went stale) */
	char *last_reason;
	char relay[DNS_NAME_MAX + 64];
};

/* An open connection kept between messages (RFC 5321 does not ask for it;
 * every large MTA does it: one TCP and TLS set-up for many messages). */
struct idle_conn {
	struct queue_runner *r;
	struct idle_conn *next;
	struct smtp_client *client;
	char host[DNS_NAME_MAX + 1]; /* the MX name it was opened for */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool tls_off;
	enum smtp_client_tls policy; /* it was opened (and authenticated) under */
};

struct queue_runner {
	/* settings, copied at start */
	char *hostname;
	char *tls_ca_file; /* [delivery] tls_ca_file, for https: TLS reports */
	unsigned remote_port;
	char *smarthost;
	unsigned smarthost_port;
	char *smarthost_user, *smarthost_pass; /* AUTH over TLS, or NULL */
	char *srs_secret;                      /* or NULL */
	char *dkim_dir;                        /* <data_dir>/dkim */
	unsigned sched[CONFIG_RETRY_MAX];
	size_t nsched;
	unsigned expiry;
	unsigned delay_warning; /* seconds, 0 = none */
	unsigned max_conns, max_per_domain, connect_timeout;
	struct sockaddr_storage source;
	socklen_t sourcelen;
	char *resolver, *trust_anchor;

	struct store *st;
	struct worker_pool *pool;
	pthread_t thread;
	bool started;
	struct event_base *base;
	struct worker_inbox *inbox;
	struct dns_resolver *dns;
	struct mta_sts_ctx *sts;
	SSL_CTX *tls;
	int kick_fd;
	struct event *ev_kick, *ev_timer;
	struct tlsrpt_counts *counts; /* NULL: [delivery] tls_reports off */
	struct event *ev_counts;
	struct event *ev_report;
	struct tlsrpt_send *report; /* a report run in progress */
	atomic_bool stopping;
	char owner[64];

	bool leasing;
	bool want_pass;
	bool in_start, start_again;
	struct idle_conn *idle;
	unsigned nidle;
	struct qentry *inflight;
	size_t nentries;
	unsigned nactive;
	struct qdest *active;
	struct qdest *wait_head, *wait_tail;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t runner_rand(void *ctx)
{
	uint32_t v = 0;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)random();
	return v;
}

static void runner_pass(struct queue_runner *r);
static void dest_next_host(struct qdest *d);
static void dest_try_addr(struct qdest *d);
static void dest_done(struct qdest *d);

/* ---- freeing ---- */

static void dest_tlsa_clear(struct qdest *d)
{
	for (size_t i = 0; i < d->ntlsa; i++)
		free(d->tlsa[i].data);
	free(d->tlsa);
	d->tlsa = NULL;
	d->ntlsa = 0;
}

static void qdest_free(struct qdest *d)
{
	if (d == NULL)
		return;
	dns_cancel(&d->q);
	mta_sts_cancel(&d->sts_q);
	free(d->sts);
	dest_tlsa_clear(d);
	smtp_client_cancel(&d->client);
	for (size_t i = 0; i < d->n; i++)
		free(d->crcpts[i].reply);
	free(d->crcpts);
	free(d->idx);
	free(d->domain);
	free(d->last_reason);
	free(d);
}

static void qentry_free(struct qentry *e)
{
	if (e == NULL)
		return;
	for (size_t i = 0; i < e->ndests; i++)
		qdest_free(e->dests[i]);
	free(e->dests);
	for (size_t i = 0; i < e->nrcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].orcpt);
		free(e->rcpts[i].last_reply);
		free(e->rcpts[i].reply);
		free(e->rcpts[i].relay);
	}
	free(e->rcpts);
	if (e->have_range)
		store_blob_range_close(&e->range);
	buf_free(&e->dkim);
	free(e->sender);
	free(e->blob_id);
	free(e->envid);
	free(e);
}

/* ---- outcomes ---- */

static const char *result_name(enum smtp_client_result res)
{
	switch (res) {
	case SMTP_CLIENT_DELIVERED: return "delivered";
	case SMTP_CLIENT_BOUNCED: return "bounced";
	case SMTP_CLIENT_DEFERRED: return "deferred";
	default: return "untried";
	}
}

static void rcpt_set(struct qrcpt *q, enum smtp_client_result res, const char *status,
                     const char *reply, bool remote, const char *relay)
{
	q->result = res;
	snprintf(q->status, sizeof(q->status), "%s", status != NULL ? status : "");
	free(q->reply);
	q->reply = strdup(reply != NULL ? reply : "");
	q->remote = remote;
	free(q->relay);
	q->relay = relay != NULL && relay[0] != '\0' ? strdup(relay) : NULL;
}

static void log_outcome(const struct qentry *e, const struct qrcpt *q, const char *tls,
                        const char *policy)
{
	char rb[256], rp[600];
	log_info(NULL,
	         "event=delivery queue=%lld rcpt=%s relay=%s tls=%s policy=%s result=%s status=%s "
	         "attempt=%u delay=%.1fs reply=\"%s\"",
	         (long long)e->id, log_escape_str(q->addr, rb, sizeof(rb)),
	         q->relay != NULL ? q->relay : "none", tls != NULL ? tls : "none",
	         policy != NULL ? policy : "none", result_name(q->result), q->status[0] != '\0' ? q->status : "-", e->attempts + 1,
	         (double)(now_ms() - e->created * 1000) / 1000.0,
	         log_escape_str(q->reply != NULL ? q->reply : "", rp, sizeof(rp)));
}

/* Every recipient of d not decided by the client gets res with reason. */
static void dest_decide(struct qdest *d, enum smtp_client_result res, const char *status,
                        const char *reason)
{
	mta_sts_cancel(&d->sts_q);
	d->sts_wait = false;
	for (size_t i = 0; i < d->n; i++) {
		struct qrcpt *q = &d->e->rcpts[d->idx[i]];
		if (q->result != SMTP_CLIENT_UNTRIED)
			continue;
		rcpt_set(q, res, status, reason, false, d->relay);
		log_outcome(d->e, q, NULL, d->policy_label);
	}
	dest_done(d);
}

/* ---- concurrency ---- */

static unsigned runner_domain_active(const struct queue_runner *r, const char *domain)
{
	unsigned n = 0;
	for (const struct qdest *d = r->active; d != NULL; d = d->next_active)
		if (strcasecmp(d->domain, domain) == 0)
			n++;
	return n;
}

static void dest_route(struct qdest *d);

static void dest_activate(struct qdest *d)
{
	struct queue_runner *r = d->e->r;
	d->active = true;
	d->next_active = r->active;
	d->prev_active = NULL;
	if (r->active != NULL)
		r->active->prev_active = d;
	r->active = d;
	r->nactive++;
	dest_route(d);
}

static void dest_deactivate(struct qdest *d)
{
	struct queue_runner *r = d->e->r;
	if (!d->active)
		return;
	d->active = false;
	if (d->prev_active != NULL)
		d->prev_active->next_active = d->next_active;
	else
		r->active = d->next_active;
	if (d->next_active != NULL)
		d->next_active->prev_active = d->prev_active;
	r->nactive--;
}

/* Starts waiting destinations while there is room. Not re-entered: a
 * destination that ends at once (dest_done) asks for another round instead. */
static void runner_start_waiting(struct queue_runner *r)
{
	if (r->in_start) {
		r->start_again = true;
		return;
	}
	r->in_start = true;
	do {
		r->start_again = false;
		struct qdest **pp = &r->wait_head, *prev = NULL;
		while (*pp != NULL && r->nactive < r->max_conns && !atomic_load(&r->stopping)) {
			struct qdest *d = *pp;
			if (runner_domain_active(r, d->domain) >= r->max_per_domain) {
				prev = d;
				pp = &d->next_wait;
				continue;
			}
			*pp = d->next_wait;
			if (r->wait_tail == d)
				r->wait_tail = prev;
			d->next_wait = NULL;
			d->waiting = false;
			dest_activate(d);
		}
	} while (r->start_again);
	r->in_start = false;
}

static void dest_start(struct qdest *d)
{
	struct queue_runner *r = d->e->r;
	if (r->nactive < r->max_conns && runner_domain_active(r, d->domain) < r->max_per_domain) {
		dest_activate(d);
		return;
	}
	d->waiting = true;
	if (r->wait_tail != NULL)
		r->wait_tail->next_wait = d;
	else
		r->wait_head = d;
	r->wait_tail = d;
}

/* ---- routing ---- */

static void dest_set_reason(struct qdest *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void dest_set_reason(struct qdest *d, const char *fmt, ...)
{
	va_list ap;
	free(d->last_reason);
	va_start(ap, fmt);
	d->last_reason = str_vprintf(fmt, ap);
	va_end(ap);
}

static void idle_unlink(struct queue_runner *r, struct idle_conn *ic)
{
	for (struct idle_conn **pp = &r->idle; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ic) {
			*pp = ic->next;
			r->nidle--;
			return;
		}
}

static void idle_on_lost(void *ctx)
{
	struct idle_conn *ic = ctx;
	idle_unlink(ic->r, ic);
	free(ic); /* the client frees itself */
}

/* Keeps d's connection for the next message to that address. */
static void idle_park(struct qdest *d, struct smtp_client *c)
{
	struct queue_runner *r = d->e->r;
	struct idle_conn *ic = calloc(1, sizeof(*ic));
	if (ic == NULL || atomic_load(&r->stopping)) {
		free(ic);
		smtp_client_close(&c);
		return;
	}
	if (r->nidle >= RUNNER_IDLE_MAX) {
		/* the oldest goes (the list is newest first) */
		struct idle_conn **pp = &r->idle;
		while ((*pp)->next != NULL)
			pp = &(*pp)->next;
		struct idle_conn *old = *pp;
		*pp = NULL;
		r->nidle--;
		smtp_client_close(&old->client);
		free(old);
	}
	ic->r = r;
	ic->client = c;
	snprintf(ic->host, sizeof(ic->host), "%s", d->hosts[d->hosti - 1]);
	socklen_t len;
	const struct sockaddr *sa = smtp_client_addr(c, &len);
	memcpy(&ic->addr, sa, len);
	ic->addrlen = len;
	ic->tls_off = d->tls_off;
	ic->policy = d->policy;
	ic->next = r->idle;
	r->idle = ic;
	r->nidle++;
	smtp_client_park(c, idle_on_lost, ic);
}

/* An idle connection to exactly this address opened for this host, taken
 * out of the pool; NULL when none. */
static struct smtp_client *idle_take(struct queue_runner *r, const char *host,
                                     const struct sockaddr *sa, socklen_t len,
                                     enum smtp_client_tls policy)
{
	for (struct idle_conn *ic = r->idle; ic != NULL; ic = ic->next) {
		/* one opened under another TLS policy may not have met this one */
		if (ic->addrlen != len || memcmp(&ic->addr, sa, len) != 0 ||
		    strcasecmp(ic->host, host) != 0 || ic->policy != policy)
			continue;
		struct smtp_client *c = ic->client;
		idle_unlink(r, ic);
		free(ic);
		return c;
	}
	return NULL;
}

/* ---- TLS report counts (RFC 8460) ---- */

static const char *count_result(enum smtp_client_tls_result res)
{
	switch (res) {
	case SMTP_CLIENT_TLS_OK: return "";
	case SMTP_CLIENT_TLS_NO_STARTTLS: return tlsrpt_result_name(TLSRPT_STARTTLS_NOT_SUPPORTED);
	case SMTP_CLIENT_TLS_HOST_MISMATCH:
		return tlsrpt_result_name(TLSRPT_CERTIFICATE_HOST_MISMATCH);
	case SMTP_CLIENT_TLS_EXPIRED: return tlsrpt_result_name(TLSRPT_CERTIFICATE_EXPIRED);
	case SMTP_CLIENT_TLS_UNTRUSTED: return tlsrpt_result_name(TLSRPT_CERTIFICATE_NOT_TRUSTED);
	case SMTP_CLIENT_TLS_HANDSHAKE:
	case SMTP_CLIENT_TLS_DANE_MISMATCH: return tlsrpt_result_name(TLSRPT_VALIDATION_FAILURE);
	default: return NULL;
	}
}

/* One session (or a policy failure before one) to the current host, counted
 * for the recipient domain's TLS report. result NULL: not counted. */
static void dest_count(struct qdest *d, const char *result, const char *sending_ip,
                       bool with_peer)
{
	struct queue_runner *r = d->e->r;
	/* a smarthost is not the domain's MX; the sender asked that policies not
	 * matter */
	if (r->counts == NULL || result == NULL || r->smarthost != NULL || d->hosti == 0 ||
	    d->e->tls == STORE_TLS_NOT_REQUIRED)
		return;
	char rip[INET6_ADDRSTRLEN] = "";
	if (with_peer && d->addri < d->naddrs) {
		const struct sockaddr *sa = (const struct sockaddr *)&d->addrs[d->addri];
		const void *a = sa->sa_family == AF_INET6
		                    ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
		                    : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
		if (inet_ntop(sa->sa_family, a, rip, sizeof(rip)) == NULL)
			rip[0] = '\0';
	}
	struct buf policy;
	buf_init(&policy, 64 * 1024);
	const char *type = tlsrpt_policy_type_name(TLSRPT_POLICY_NONE);
	if (d->policy != SMTP_CLIENT_TLS_DANE && d->sts != NULL) {
		/* RFC 8460 4.4: the policy's lines */
		type = tlsrpt_policy_type_name(TLSRPT_POLICY_STS);
		(void)buf_printf(&policy, "version: STSv1\nmode: %s", mta_sts_mode_name(d->sts->mode));
		for (size_t i = 0; i < d->sts->nmx; i++)
			(void)buf_printf(&policy, "\nmx: %s", d->sts->mx[i]);
		(void)buf_printf(&policy, "\nmax_age: %u", (unsigned)d->sts->max_age);
	} else if (d->policy == SMTP_CLIENT_TLS_DANE) {
		type = tlsrpt_policy_type_name(TLSRPT_POLICY_TLSA);
		for (size_t i = 0; i < d->ntlsa; i++) {
			const struct dns_tlsa *t = &d->tlsa[i];
			char head[16];
			snprintf(head, sizeof(head), "%s%u %u %u ", i > 0 ? "\n" : "", t->usage,
			         t->selector, t->mtype);
			(void)buf_append(&policy, head, strlen(head));
			for (size_t k = 0; k < t->len; k++) {
				char hx[3];
				snprintf(hx, sizeof(hx), "%02x", t->data[k]);
				(void)buf_append(&policy, hx, 2);
			}
		}
	}
	struct store_tlsrpt_row row = {
	    .domain = d->domain,
	    .policy_type = type,
	    .policy = policy.data != NULL ? policy.data : "",
	    .mx = d->hosts[d->hosti - 1],
	    .result = result,
	    .sending_ip = sending_ip != NULL ? sending_ip : "",
	    .receiving_ip = rip,
	    .count = 1,
	};
	tlsrpt_counts_note(r->counts, time(NULL), &row);
	buf_free(&policy);
}

static void dest_on_client(void *ctx, const struct smtp_client_report *rep)
{
	struct qdest *d = ctx;
	struct queue_runner *r = d->e->r;
	struct smtp_client *client = d->client;
	d->client = NULL; /* freed by the client itself after this call, or idle */
	if (!rep->reused) {
		/* MTA-STS testing: what enforcing would have found (RFC 8461 5) */
		bool testing = d->policy != SMTP_CLIENT_TLS_DANE && d->sts != NULL &&
		               d->sts->mode == MTA_STS_MODE_TESTING &&
		               rep->tls_result == SMTP_CLIENT_TLS_OK;
		dest_count(d, count_result(testing ? rep->tls_auth : rep->tls_result), rep->local_ip,
		           true);
	}
	if (rep->try_next && rep->reused && !d->fresh) {
		/* a kept connection that went stale: this address again, anew */
		d->fresh = true;
		dest_try_addr(d);
		return;
	}
	if (rep->try_next && rep->tls_policy_failed) {
		/* never in plain text: the next address, the next host */
		d->policy_failed = true;
		dest_set_reason(d, "%s: %s", d->relay, rep->reason != NULL ? rep->reason : "?");
		d->addri++;
		dest_try_addr(d);
		return;
	}
	if (rep->try_next) {
		if (rep->tls_failed && !d->tls_off && r->smarthost_user == NULL) {
			/* opportunistic TLS: the same address again, in plain text */
			d->tls_off = true;
			dest_set_reason(d, "%s: %s", d->relay, rep->reason != NULL ? rep->reason : "?");
			dest_try_addr(d);
			return;
		}
		d->tls_off = false;
		dest_set_reason(d, "%s: %s", d->relay, rep->reason != NULL ? rep->reason : "?");
		d->addri++;
		dest_try_addr(d);
		return;
	}
	for (size_t i = 0; i < d->n; i++) {
		struct qrcpt *q = &d->e->rcpts[d->idx[i]];
		struct smtp_client_rcpt *c = &d->crcpts[i];
		if (c->result == SMTP_CLIENT_UNTRIED) {
			rcpt_set(q, SMTP_CLIENT_DEFERRED, "4.4.2",
			         rep->reason != NULL ? rep->reason : "not attempted", false, d->relay);
		} else {
			rcpt_set(q, c->result, c->status, c->reply, c->remote, d->relay);
		}
		log_outcome(d->e, q, rep->tls, d->policy_label);
	}
	if (rep->idle)
		idle_park(d, client);
	dest_done(d);
}

static void dest_try_addr(struct qdest *d)
{
	struct queue_runner *r = d->e->r;
	struct qentry *e = d->e;
	char ip[INET6_ADDRSTRLEN];
	char *err = NULL;

	if (atomic_load(&r->stopping))
		return;
	if (d->addri >= d->naddrs) {
		dest_next_host(d);
		return;
	}
	const struct sockaddr *sa = (const struct sockaddr *)&d->addrs[d->addri];
	if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
	snprintf(d->relay, sizeof(d->relay), "%s[%s]:%u", d->hosts[d->hosti - 1], ip, d->port);

	d->msg = (struct smtp_client_msg){
	    .sender = e->sender,
	    .body = e->body,
	    .smtputf8 = e->smtputf8,
	    .requiretls = e->tls == STORE_TLS_REQUIRE,
	    .envid = e->envid,
	    .ret = e->ret,
	    .fd = e->range.fd,
	    .off = e->range.off,
	    .len = e->range.len,
	    .prefix = e->dkim.data,
	    .prefix_len = e->dkim.len,
	    .rcpts = d->crcpts,
	    .nrcpts = d->n,
	};
	for (size_t i = 0; i < d->n; i++) {
		free(d->crcpts[i].reply);
		d->crcpts[i].reply = NULL;
	}
	struct smtp_client_params p = {
	    .base = r->base,
	    .pool = r->pool,
	    .inbox = r->inbox,
	    .helo = r->hostname,
	    .tls = r->tls,
	    .tls_disabled = d->tls_off,
	    .tls_policy = d->policy,
	    .tls_policy_name = d->policy_name,
	    .tlsa = d->tlsa,
	    .ntlsa = d->ntlsa,
	    .tls_name2 = d->policy == SMTP_CLIENT_TLS_DANE ? d->domain : NULL,
	    .host = d->hosts[d->hosti - 1],
	    .addr = sa,
	    .addrlen = d->addrlens[d->addri],
	    .source = r->sourcelen > 0 && r->source.ss_family == sa->sa_family
	                  ? (const struct sockaddr *)&r->source
	                  : NULL,
	    .sourcelen = r->sourcelen,
	    .connect_timeout = r->connect_timeout,
	    .auth_user = r->smarthost_user,
	    .auth_pass = r->smarthost_pass,
	    .idle_keep = RUNNER_IDLE_SECS,
	};
	struct smtp_client *kept =
	    d->fresh ? NULL : idle_take(r, p.host, sa, d->addrlens[d->addri], d->policy);
	if (kept != NULL) {
		d->client = kept;
		if (smtp_client_reuse(kept, &d->msg, dest_on_client, d) > 0)
			return;
		d->client = NULL; /* freed: a new connection instead */
	}
	if (smtp_client_start(&p, &d->msg, dest_on_client, d, &d->client, &err) < 0) {
		dest_set_reason(d, "%s: %s", d->relay, err != NULL ? err : "cannot connect");
		free(err);
		d->addri++;
		dest_try_addr(d); /* recursion bounded by RUNNER_ADDRS_MAX */
	}
}

static void dest_add_addr(struct qdest *d, int family, const void *addr)
{
	if (d->naddrs >= RUNNER_ADDRS_MAX)
		return;
	struct sockaddr_storage *ss = &d->addrs[d->naddrs];
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)d->port);
		memcpy(&sin->sin_addr, addr, 4);
		d->addrlens[d->naddrs] = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)d->port);
		memcpy(&sin6->sin6_addr, addr, 16);
		d->addrlens[d->naddrs] = sizeof(*sin6);
	}
	d->naddrs++;
}

/* The current host's addresses (and TLSA records) are known: its TLS policy
 * (docs/delivery.md), then its first address. */
static void dest_host_ready(struct qdest *d)
{
	const struct qentry *e = d->e;
	d->policy_label = "opportunistic";
	d->policy_name = NULL;
	if (e->tls == STORE_TLS_NOT_REQUIRED) {
		/* RFC 8689 5: the sender asked that policies be ignored */
		d->policy = SMTP_CLIENT_TLS_OPPORTUNISTIC;
		d->policy_label = "tls-required-no";
	} else if (d->policy == SMTP_CLIENT_TLS_DANE &&
	           (d->ntlsa > 0 || e->tls != STORE_TLS_REQUIRE)) {
		/* (with no usable record: encrypted, not authenticated: RFC 7672 2.2) */
		d->policy_label = d->ntlsa > 0 ? "dane" : "dane-unusable";
		d->policy_name = "DANE";
	} else if (d->sts != NULL && d->sts->mode == MTA_STS_MODE_ENFORCE) {
		/* RFC 8461 4.2: a certificate valid for the MX name (the host matched
		 * the policy: dest_next_host) */
		d->policy = SMTP_CLIENT_TLS_VERIFY;
		d->policy_label = "mta-sts";
		d->policy_name = e->tls == STORE_TLS_REQUIRE ? "REQUIRETLS" : "MTA-STS";
	} else if (e->tls == STORE_TLS_REQUIRE) {
		/* RFC 8689 4.2.1: authenticated, by DANE or the MX name's certificate */
		d->policy = SMTP_CLIENT_TLS_VERIFY;
		d->policy_label = "requiretls";
		d->policy_name = "REQUIRETLS";
	}
	if (strcmp(d->policy_label, "opportunistic") == 0 && d->sts != NULL &&
	    d->sts->mode == MTA_STS_MODE_TESTING)
		d->policy_label = "mta-sts-testing";
	d->addri = 0;
	dest_try_addr(d);
}

/* The TLSA answer for the current host (RFC 7672 2.2): secure records make it
 * a DANE host; a secure denial or an insecure answer leave it as it is; a
 * failed lookup (bogus included) makes the host unusable. */
static void dest_on_tlsa(void *ctx, const struct dns_answer *a)
{
	struct qdest *d = ctx;
	d->q = NULL;
	const char *host = d->hosts[d->hosti - 1];
	if (a->status == DNS_TEMPFAIL) {
		if (a->security == DNS_BOGUS) {
			d->policy = SMTP_CLIENT_TLS_DANE;
			dest_count(d, tlsrpt_result_name(TLSRPT_DNSSEC_INVALID), NULL, false);
			d->policy = SMTP_CLIENT_TLS_OPPORTUNISTIC;
		}
		dest_set_reason(d, "TLSA lookup for %s failed (%s): DANE cannot be checked", host,
		                a->why != NULL ? a->why : "temporary failure");
		d->policy_failed = true;
		dest_next_host(d);
		return;
	}
	if (a->status == DNS_OK && a->security == DNS_SECURE) {
		d->policy = SMTP_CLIENT_TLS_DANE;
		d->tlsa = calloc(a->n, sizeof(*d->tlsa));
		if (d->tlsa == NULL) {
			dest_decide(d, SMTP_CLIENT_DEFERRED, "4.3.0", "out of memory");
			return;
		}
		for (size_t i = 0; i < a->n; i++) {
			const struct dns_tlsa *t = &a->tlsa[i];
			/* RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are not for SMTP */
			if (t->usage != 2 && t->usage != 3)
				continue;
			struct dns_tlsa *c = &d->tlsa[d->ntlsa];
			*c = *t;
			c->data = malloc(t->len > 0 ? t->len : 1);
			if (c->data == NULL) {
				dest_decide(d, SMTP_CLIENT_DEFERRED, "4.3.0", "out of memory");
				return;
			}
			memcpy(c->data, t->data, t->len);
			d->ntlsa++;
		}
	}
	dest_host_ready(d);
}

static void dest_on_addr(void *ctx, const struct dns_answer *a)
{
	struct qdest *d = ctx;
	d->q = NULL;
	const char *host = d->hosts[d->hosti - 1];
	if (a->security == DNS_SECURE && a->status != DNS_TEMPFAIL)
		d->addr_secure = true;
	if (a->status == DNS_OK) {
		for (size_t i = 0; i < a->n; i++)
			dest_add_addr(d, a->type == DNS_TYPE_A ? AF_INET : AF_INET6,
			              a->type == DNS_TYPE_A ? (const void *)&a->a[i]
			                                    : (const void *)&a->aaaa[i]);
	} else if (a->status == DNS_TEMPFAIL) {
		dest_set_reason(d, "cannot look up the address of %s (%s): %s", host,
		                dns_type_name(a->type), a->why != NULL ? a->why : "temporary failure");
	} else if (d->last_reason == NULL) {
		dest_set_reason(d, "%s has no address (%s)", host, dns_type_name(a->type));
	}
	char *err = NULL;
	if (a->type == DNS_TYPE_A) {
		/* then the IPv6 addresses (tried after the IPv4 ones) */
		if (dns_lookup(d->e->r->dns, host, DNS_TYPE_AAAA, dest_on_addr, d, &d->q, &err) > 0)
			return;
		free(err);
	}
	d->addri = 0;
	if (d->naddrs > 0 && d->mx_secure && d->addr_secure && d->e->r->smarthost == NULL &&
	    d->e->tls != STORE_TLS_NOT_REQUIRED) {
		/* RFC 7672 2.2.2: a host reached through secure MX and address
		 * records may have TLSA records */
		char name[DNS_NAME_MAX + 32];
		snprintf(name, sizeof(name), "_%u._tcp.%s", d->port, host);
		if (dns_lookup(d->e->r->dns, name, DNS_TYPE_TLSA, dest_on_tlsa, d, &d->q, &err) > 0)
			return;
		dest_set_reason(d, "cannot look up TLSA %s: %s", name, err != NULL ? err : "?");
		free(err);
		d->policy_failed = true;
		dest_next_host(d);
		return;
	}
	dest_host_ready(d);
}

static void dest_next_host(struct qdest *d)
{
	struct queue_runner *r = d->e->r;
	if (d->hosti >= d->nhosts) {
		/* 4.7.5: a certificate that did not authenticate (RFC 3463 "cryptographic
		 * failure"), as the reason shows */
		dest_decide(d, SMTP_CLIENT_DEFERRED, d->policy_failed ? "4.7.5" : "4.4.1",
		            d->last_reason != NULL ? d->last_reason : "no server could be reached");
		return;
	}
	const char *host = d->hosts[d->hosti++];
	bool sts_applies = d->sts != NULL && (d->sts->mode == MTA_STS_MODE_ENFORCE ||
	                                      (d->e->tls == STORE_TLS_REQUIRE && !d->mx_secure));
	if (sts_applies && !mta_sts_mx_match(d->sts, host)) {
		/* RFC 8461 4.1: never to an MX host the policy does not name */
		dest_set_reason(d, "%s does not match the MTA-STS policy of %s", host, d->domain);
		d->policy_failed = true;
		dest_next_host(d);
		return;
	}
	d->naddrs = d->addri = 0;
	d->tls_off = false;
	d->addr_secure = false;
	d->policy = SMTP_CLIENT_TLS_OPPORTUNISTIC;
	dest_tlsa_clear(d);
	snprintf(d->relay, sizeof(d->relay), "%s", host);
	/* a host given as an address literal (smarthost, domain literal) */
	unsigned char bin[16];
	if (inet_pton(AF_INET, host, bin) == 1) {
		dest_add_addr(d, AF_INET, bin);
		dest_host_ready(d);
		return;
	}
	if (inet_pton(AF_INET6, host, bin) == 1) {
		dest_add_addr(d, AF_INET6, bin);
		dest_host_ready(d);
		return;
	}
	char *err = NULL;
	if (dns_lookup(r->dns, host, DNS_TYPE_A, dest_on_addr, d, &d->q, &err) < 0) {
		dest_set_reason(d, "cannot look up %s: %s", host, err != NULL ? err : "?");
		free(err);
		dest_next_host(d);
	}
}

static void dest_routes_ready(struct qdest *d);

/* The MTA-STS lookup's answer (mta_sts.h): the policy, when one applies. A
 * failed fetch with nothing cached is no policy (RFC 8461 5.1), counted for
 * the TLS report. */
static void dest_on_sts(void *ctx, const struct mta_sts_policy *pol, const char *reason)
{
	struct qdest *d = ctx;
	d->sts_q = NULL;
	d->sts_wait = false;
	if (pol != NULL && pol->mode != MTA_STS_MODE_NONE) {
		d->sts = malloc(sizeof(*d->sts));
		if (d->sts != NULL)
			*d->sts = *pol;
	}
	if (pol == NULL && reason != NULL && strncmp(reason, "fetch failed", 12) == 0 &&
	    d->e->r->counts != NULL) {
		/* RFC 8460 4.3.2: the domain has a TXT record, the policy did not come */
		enum tlsrpt_result res =
		    strstr(reason, "certificate") != NULL || strstr(reason, "TLS") != NULL
		        ? TLSRPT_STS_WEBPKI_INVALID
		    : strstr(reason, "policy:") != NULL ? TLSRPT_STS_POLICY_INVALID
		                                        : TLSRPT_STS_POLICY_FETCH_ERROR;
		struct store_tlsrpt_row row = {
		    .domain = d->domain,
		    .policy_type = tlsrpt_policy_type_name(TLSRPT_POLICY_STS),
		    .policy = "",
		    .mx = "",
		    .result = tlsrpt_result_name(res),
		    .sending_ip = "",
		    .receiving_ip = "",
		    .count = 1,
		};
		tlsrpt_counts_note(d->e->r->counts, time(NULL), &row);
	}
	if (d->mx_ready)
		dest_routes_ready(d);
}

static void dest_on_mx(void *ctx, const struct dns_answer *a)
{
	struct qdest *d = ctx;
	d->q = NULL;
	d->mx_secure = a->security == DNS_SECURE;
	switch (a->status) {
	case DNS_OK: {
		struct dns_mx *mx = malloc(a->n * sizeof(*mx));
		if (mx == NULL) {
			dest_decide(d, SMTP_CLIENT_DEFERRED, "4.3.0", "out of memory");
			return;
		}
		memcpy(mx, a->mx, a->n * sizeof(*mx));
		long k = route_mx_order(mx, a->n, runner_rand, NULL);
		if (k < 0) {
			free(mx);
			/* RFC 7505 4.1 */
			char why[DNS_NAME_MAX + 100];
			snprintf(why, sizeof(why), "the domain %s accepts no mail (null MX)", d->domain);
			dest_decide(d, SMTP_CLIENT_BOUNCED, "5.1.10", why);
			return;
		}
		d->nhosts = 0;
		for (long i = 0; i < k && d->nhosts < RUNNER_HOSTS_MAX; i++)
			snprintf(d->hosts[d->nhosts++], sizeof(d->hosts[0]), "%s", mx[i].host);
		free(mx);
		break;
	}
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the domain itself is the host */
		snprintf(d->hosts[0], sizeof(d->hosts[0]), "%s", d->domain);
		d->nhosts = 1;
		break;
	case DNS_NXDOMAIN: {
		char why[DNS_NAME_MAX + 100];
		snprintf(why, sizeof(why), "the domain %s does not exist (DNS NXDOMAIN)", d->domain);
		dest_decide(d, SMTP_CLIENT_BOUNCED, "5.1.2", why);
		return;
	}
	default: {
		char why[DNS_NAME_MAX + 200];
		snprintf(why, sizeof(why), "MX lookup for %s failed: %s", d->domain,
		         a->why != NULL ? a->why : "temporary DNS failure");
		dest_decide(d, SMTP_CLIENT_DEFERRED, "4.4.3", why);
		return;
	}
	}
	d->mx_ready = true;
	if (!d->sts_wait)
		dest_routes_ready(d);
}

/* The MX hosts and the MTA-STS policy are known: the first host. */
static void dest_routes_ready(struct qdest *d)
{
	bool sts = d->sts != NULL && d->sts->mode != MTA_STS_MODE_NONE;
	if (d->e->tls == STORE_TLS_REQUIRE && !d->mx_secure && !sts) {
		/* RFC 8689 4.2.1: the MX hosts must come from DNSSEC-validated
		 * records (or an MTA-STS policy) */
		char why[DNS_NAME_MAX + 200];
		snprintf(why, sizeof(why),
		         "REQUIRETLS: the MX records of %s are not DNSSEC-validated and it has no "
		         "MTA-STS policy",
		         d->domain);
		dest_decide(d, SMTP_CLIENT_BOUNCED, "5.7.30", why);
		return;
	}
	d->hosti = 0;
	dest_next_host(d);
}

static void dest_route(struct qdest *d)
{
	struct queue_runner *r = d->e->r;
	int family;
	unsigned char bin[16];

	if (r->smarthost != NULL) {
		snprintf(d->hosts[0], sizeof(d->hosts[0]), "%s", r->smarthost);
		d->nhosts = 1;
		d->port = r->smarthost_port;
		dest_next_host(d);
		return;
	}
	d->port = r->remote_port;
	int lit = route_domain_literal(d->domain, &family, bin);
	if (lit < 0) {
		dest_decide(d, SMTP_CLIENT_BOUNCED, "5.1.2", "malformed address literal");
		return;
	}
	if (lit > 0 && d->e->tls == STORE_TLS_REQUIRE) {
		dest_decide(d, SMTP_CLIENT_BOUNCED, "5.7.30",
		            "REQUIRETLS: an address literal cannot be authenticated");
		return;
	}
	if (lit > 0) {
		inet_ntop(family, bin, d->hosts[0], sizeof(d->hosts[0]));
		d->nhosts = 1;
		dest_next_host(d);
		return;
	}
	char *err = NULL;
	if (dns_lookup(r->dns, d->domain, DNS_TYPE_MX, dest_on_mx, d, &d->q, &err) < 0) {
		char why[300];
		snprintf(why, sizeof(why), "invalid domain: %s", err != NULL ? err : "?");
		free(err);
		dest_decide(d, SMTP_CLIENT_BOUNCED, "5.1.2", why);
		return;
	}
	/* the MTA-STS policy at the same time (mostly from the cache); the sender
	 * who wrote TLS-Required: No asked that it not matter */
	if (r->sts != NULL && d->e->tls != STORE_TLS_NOT_REQUIRED) {
		d->sts_wait = true;
		if (mta_sts_lookup(r->sts, d->domain, dest_on_sts, d, &d->sts_q, &err) < 0) {
			d->sts_wait = false;
			free(err);
		}
	}
}

/* ---- recording the outcome ---- */

struct record_job {
	struct qentry *e;
	struct store_queue_result *res;
	size_t nres;
	struct dsn_rcpt *dsn; /* failed recipients to report */
	size_t ndsn;
	struct dsn_rcpt *delay; /* delayed ones, for the one delay warning */
	size_t ndelay;
	bool warned;
	int64_t now, next_attempt;
	bool removed;
	int rc;
	char *error;
	char *dsn_error;
};

static long dsn_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct qentry *e = ctx;
	if (off >= e->range.len)
		return 0;
	if (len > e->range.len - off)
		len = (size_t)(e->range.len - off);
	for (;;) {
		ssize_t n = pread(e->range.fd, buf, len, (off_t)(e->range.off + off));
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -1 : (long)n;
	}
}

static int dsn_write(void *ctx, const void *p, size_t n)
{
	char *err = NULL;
	if (store_msg_write(ctx, p, n, &err) < 0) {
		free(err);
		return -1;
	}
	return 1;
}

/* Makes the DSN for job->dsn and hands it to the original sender: into the
 * account's INBOX when the sender is local, else queued (sender <>: a DSN is
 * never answered by another). Durable when it returns 1. */
static int record_send_dsn(struct record_job *job, const struct dsn_rcpt *rcpts, size_t n,
                           char **error_r)
{
	struct qentry *e = job->e;
	struct queue_runner *r = e->r;
	struct store_msg *m = NULL;
	char from[300];
	char **accounts = NULL;
	int ret = -1;

	snprintf(from, sizeof(from), "MAILER-DAEMON@%s", r->hostname);
	/* forwarded mail carries an SRS sender of ours: the report goes to the
	 * original sender it stands for */
	char orig[SRS_ADDR_MAX + 1];
	const char *to = e->sender;
	if (r->srs_secret != NULL &&
	    srs_reverse(r->srs_secret, e->sender, job->now, orig, sizeof(orig)) > 0)
		to = orig;
	struct dsn_params p = {
	    .reporting_mta = r->hostname,
	    .from = from,
	    .to = to,
	    .envid = e->envid,
	    .arrival = e->created,
	    .now = job->now,
	    /* RFC 8689 5: a report on a REQUIRETLS message may go where TLS is not
	     * required of it: the original's header only, never its body */
	    .ret = e->tls == STORE_TLS_REQUIRE ? STORE_RET_HDRS : e->ret,
	    .smtputf8 = e->smtputf8,
	    .body = e->body,
	    .orig_size = e->range.len,
	    .full_max = RUNNER_DSN_FULL_MAX,
	};
	int local = store_resolve_recipient(r->st, to, &accounts, error_r);
	if (local < 0)
		return -1;
	if (local == 0) {
		/* not an account: a remote sender, or a local domain's unknown user */
		const char *dom = route_domain(to);
		int is_local = store_domain_exists(r->st, dom, error_r);
		if (is_local < 0)
			return -1;
		if (is_local > 0) {
			log_warn(NULL, "event=dsn-dropped queue=%lld reason=sender-unknown",
			         (long long)e->id);
			return 1;
		}
	}
	if (store_msg_begin(r->st, &m, error_r) < 0)
		goto out;
	static const char rp[] = "Return-Path: <>\r\n";
	if (local > 0 && store_msg_write(m, rp, sizeof(rp) - 1, error_r) < 0)
		goto out;
	if (dsn_build(&p, rcpts, n, dsn_read, e, dsn_write, m, error_r) < 0)
		goto out;
	struct store_delivery d = {.msg = m};
	const char *rcpt[1] = {to};
	size_t nacc = 0;
	if (local > 0) {
		while (accounts[nacc] != NULL)
			nacc++;
		d.accounts = (const char *const *)accounts;
		d.naccounts = nacc;
		d.trace_len = sizeof(rp) - 1;
	} else {
		d.queue_sender = "";
		d.queue_rcpts = rcpt;
		d.nqueue_rcpts = 1;
		d.queue_body = e->body; /* the DSN carries (part of) the original */
		d.queue_smtputf8 = e->smtputf8;
		d.queue_tls = e->tls == STORE_TLS_REQUIRE ? STORE_TLS_REQUIRE : STORE_TLS_DEFAULT;
	}
	if (store_deliver(r->st, &d, NULL, error_r) < 0)
		goto out;
	const char *kind = rcpts[0].action == DSN_DELAYED ? "delayed" : "failed";
	if (d.queue_id > 0)
		log_info(NULL, "event=dsn queue=%lld action=%s to=remote rcpts=%zu dsn_queue=%lld",
		         (long long)e->id, kind, n, (long long)d.queue_id);
	else
		log_info(NULL, "event=dsn queue=%lld action=%s to=local rcpts=%zu", (long long)e->id,
		         kind, n);
	ret = 1;
out:
	store_msg_free(&m);
	store_strv_free(&accounts);
	return ret;
}

static void record_job_run(void *arg)
{
	struct record_job *job = arg;
	if (job->ndelay > 0) {
		/* the warning goes once: marked before the attempt is recorded */
		char *err = NULL;
		if (record_send_dsn(job, job->delay, job->ndelay, &err) > 0 &&
		    store_queue_set_warned(job->e->r->st, job->e->id, &err) >= 0)
			job->warned = true;
		else
			log_error(NULL, "event=dsn-failed queue=%lld action=delayed error=\"%s\"",
			          (long long)job->e->id, err != NULL ? err : "?");
		free(err);
	}
	if (job->ndsn > 0 && record_send_dsn(job, job->dsn, job->ndsn, &job->dsn_error) < 0) {
		/* keep the bounced recipients queued (deferred): the DSN is tried again
		 * at the next attempt rather than lost */
		for (size_t i = 0; i < job->nres; i++)
			if (job->res[i].result == STORE_RCPT_BOUNCED)
				job->res[i].result = STORE_RCPT_DEFERRED;
	}
	job->rc = store_queue_record(job->e->r->st, job->e->id, job->res, job->nres,
	                             job->next_attempt, &job->removed, &job->error);
}

static void record_job_done(void *arg)
{
	struct record_job *job = arg;
	struct qentry *e = job->e;
	struct queue_runner *r = e->r;

	if (job->dsn_error != NULL)
		log_error(NULL, "event=dsn-failed queue=%lld error=\"%s\"", (long long)e->id,
		          job->dsn_error);
	if (job->rc < 0)
		log_error(NULL, "event=queue-record-failed queue=%lld error=\"%s\"", (long long)e->id,
		          job->error != NULL ? job->error : "?");
	else if (job->removed)
		log_info(NULL, "event=queue-done queue=%lld", (long long)e->id);
	free(job->error);
	free(job->dsn_error);
	free(job->res);
	free(job->dsn);
	free(job->delay);
	/* off the in-flight list */
	for (struct qentry **pp = &r->inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	r->nentries--;
	qentry_free(e);
	free(job);
	runner_pass(r);
}

static bool rcpt_wants_failure_dsn(const struct qrcpt *q)
{
	if (q->notify == 0)
		return true; /* RFC 3461 4.1: the default is FAILURE (and DELAY) */
	return (q->notify & STORE_NOTIFY_FAILURE) != 0;
}

static bool rcpt_wants_delay_dsn(const struct qrcpt *q)
{
	if (q->notify == 0)
		return true; /* RFC 3461 4.1: without NOTIFY, delays may be reported */
	return (q->notify & STORE_NOTIFY_DELAY) != 0;
}

static void entry_finish(struct qentry *e)
{
	struct queue_runner *r = e->r;
	struct record_job *job = calloc(1, sizeof(*job));
	int64_t now = time(NULL);

	if (job == NULL)
		goto oom;
	job->e = e;
	job->now = now;
	job->res = calloc(e->nrcpts, sizeof(*job->res));
	job->dsn = calloc(e->nrcpts, sizeof(*job->dsn));
	job->delay = calloc(e->nrcpts, sizeof(*job->delay));
	if (job->res == NULL || job->dsn == NULL || job->delay == NULL)
		goto oom;
	/* RFC 3464 "delayed": once, when the message has waited delay_warning */
	bool warn = !e->warned && e->sender[0] != '\0' && r->delay_warning > 0 &&
	            now - e->created >= (int64_t)r->delay_warning;
	bool expired = route_expired(now, e->created, r->expiry);
	for (size_t i = 0; i < e->nrcpts; i++) {
		struct qrcpt *q = &e->rcpts[i];
		if (q->result == SMTP_CLIENT_UNTRIED)
			rcpt_set(q, SMTP_CLIENT_DEFERRED, "4.4.1", "not attempted", false, NULL);
		if (q->result == SMTP_CLIENT_DEFERRED && expired) {
			/* RFC 3463 4.4.7: delivery time expired */
			char *why = NULL;
			if (asprintf(&why, "gave up after %u attempts over %lld hours; last error: %s",
			             e->attempts + 1, (long long)((now - e->created) / 3600),
			             q->reply != NULL ? q->reply : "?") < 0)
				why = NULL;
			free(q->reply);
			q->reply = why != NULL ? why : strdup("message expired");
			snprintf(q->status, sizeof(q->status), "4.4.7");
			q->result = SMTP_CLIENT_BOUNCED;
			q->remote = false;
			log_outcome(e, q, NULL, NULL);
		}
		struct store_queue_result *res = &job->res[job->nres++];
		res->rcpt = q->addr;
		res->reply = q->reply;
		res->result = q->result == SMTP_CLIENT_DELIVERED  ? STORE_RCPT_DELIVERED
		              : q->result == SMTP_CLIENT_BOUNCED ? STORE_RCPT_BOUNCED
		                                                 : STORE_RCPT_DEFERRED;
		if (q->result == SMTP_CLIENT_BOUNCED && e->sender[0] != '\0' &&
		    rcpt_wants_failure_dsn(q)) {
			struct dsn_rcpt *dr = &job->dsn[job->ndsn++];
			dr->rcpt = q->addr;
			dr->orcpt = q->orcpt;
			dr->action = DSN_FAILED;
			dr->status = q->status[0] != '\0' ? q->status : "5.0.0";
			const char *host = q->relay;
			dr->remote_mta = q->remote ? host : NULL;
			dr->diagnostic = q->remote ? q->reply : NULL;
			dr->reason = q->remote ? NULL : q->reply;
			dr->last_attempt = now;
		}
		if (q->result == SMTP_CLIENT_DEFERRED && warn && rcpt_wants_delay_dsn(q)) {
			struct dsn_rcpt *dr = &job->delay[job->ndelay++];
			dr->rcpt = q->addr;
			dr->orcpt = q->orcpt;
			dr->action = DSN_DELAYED;
			dr->status = q->status[0] == '4' ? q->status : "4.0.0";
			dr->remote_mta = q->remote ? q->relay : NULL;
			dr->diagnostic = q->remote ? q->reply : NULL;
			dr->reason = q->remote ? NULL : q->reply;
			dr->last_attempt = now;
			dr->retry_until = e->created + (int64_t)r->expiry;
		}
	}
	job->next_attempt = route_next_attempt(now, e->attempts + 1, r->sched, r->nsched);
	if (worker_pool_submit(r->pool, r->inbox, record_job_run, record_job_done, job) < 0)
		goto oom;
	return;
oom:
	/* the lease stays until the next start: nothing is lost, only delayed */
	log_error(NULL, "event=queue-record-failed queue=%lld error=\"out of memory\"",
	          (long long)e->id);
	if (job != NULL) {
		free(job->res);
		free(job->dsn);
		free(job->delay);
		free(job);
	}
}

static void dest_done(struct qdest *d)
{
	struct qentry *e = d->e;
	struct queue_runner *r = e->r;
	if (d->waiting)
		return; /* cannot happen: a waiting destination has not started */
	dest_deactivate(d);
	runner_start_waiting(r);
	if (--e->dests_left == 0)
		entry_finish(e);
}

/* ---- entries ---- */

/* The entry's message cannot be read (its blob is gone: a damaged data dir):
 * an attempt that failed here, retried on the schedule and bounced at expiry
 * like any other, so that the entry does not stay leased and its sender
 * learns of it. */
static void entry_unreadable(struct qentry *e)
{
	for (size_t i = 0; i < e->nrcpts; i++) {
		struct qrcpt *q = &e->rcpts[i];
		if (q->admin_bounce)
			rcpt_set(q, SMTP_CLIENT_BOUNCED, "5.0.0",
			         "the message was bounced by the administrator", false, NULL);
		else
			rcpt_set(q, SMTP_CLIENT_DEFERRED, "4.3.0",
			         "local error: the queued message cannot be read", false, NULL);
		log_outcome(e, q, NULL, NULL);
	}
	entry_finish(e);
}

static void entry_start(struct qentry *e)
{
	/* administrator bounces first: they need no connection */
	for (size_t i = 0; i < e->nrcpts; i++) {
		struct qrcpt *q = &e->rcpts[i];
		if (q->admin_bounce) {
			rcpt_set(q, SMTP_CLIENT_BOUNCED, "5.0.0",
			         "the message was bounced by the administrator", false, NULL);
			log_outcome(e, q, NULL, NULL);
		}
	}
	/* one destination per recipient domain (RFC 5321 5: recipients of one
	 * domain share a transaction) */
	e->dests = calloc(e->nrcpts, sizeof(*e->dests));
	if (e->dests == NULL)
		goto oom;
	for (size_t i = 0; i < e->nrcpts; i++) {
		struct qrcpt *q = &e->rcpts[i];
		if (q->admin_bounce)
			continue;
		const char *dom = route_domain(q->addr);
		struct qdest *d = NULL;
		for (size_t j = 0; j < e->ndests; j++)
			if (strcasecmp(e->dests[j]->domain, dom) == 0)
				d = e->dests[j];
		if (d == NULL) {
			d = calloc(1, sizeof(*d));
			if (d == NULL)
				goto oom;
			d->e = e;
			d->domain = strdup(dom);
			d->idx = calloc(e->nrcpts, sizeof(*d->idx));
			d->crcpts = calloc(e->nrcpts, sizeof(*d->crcpts));
			e->dests[e->ndests++] = d;
			if (d->domain == NULL || d->idx == NULL || d->crcpts == NULL)
				goto oom;
		}
		d->crcpts[d->n] = (struct smtp_client_rcpt){
		    .addr = q->addr, .notify = q->notify, .orcpt = q->orcpt};
		d->idx[d->n++] = i;
	}
	e->dests_left = e->ndests;
	if (e->ndests == 0) {
		entry_finish(e);
		return;
	}
	/* dest_start may finish a destination at once (and the entry with the last) */
	size_t n = e->ndests;
	for (size_t j = 0; j < n; j++)
		dest_start(e->dests[j]);
	return;
oom:
	log_error(NULL, "event=queue-entry-failed queue=%lld error=\"out of memory\"",
	          (long long)e->id);
	/* never started: its lease keeps it until the next start */
	e->dests_left = 0;
}

/* ---- leasing ---- */

struct lease_job {
	struct queue_runner *r;
	size_t max;
	struct qentry *head, **tail;
	int rc;
	int64_t next_due; /* 0: none */
	char *error;
};

static char *dup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void lease_cb(void *ctx, const struct store_queue_info *info)
{
	struct lease_job *job = ctx;
	struct qentry *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return;
	e->r = job->r;
	e->id = info->id;
	e->sender = strdup(info->sender != NULL ? info->sender : "");
	e->blob_id = strdup(info->blob_id != NULL ? info->blob_id : "");
	e->envid = dup_or_null(info->envid);
	e->size = info->size;
	e->trace_len = info->trace_len;
	e->created = info->created;
	e->attempts = info->attempts;
	e->body = info->body;
	e->ret = info->ret;
	e->smtputf8 = info->smtputf8;
	e->tls = info->tls;
	e->warned = info->warned;
	e->range.fd = -1;
	e->rcpts = calloc(info->nrcpt_info > 0 ? info->nrcpt_info : 1, sizeof(*e->rcpts));
	if (e->sender == NULL || e->blob_id == NULL || e->rcpts == NULL) {
		qentry_free(e);
		return;
	}
	for (size_t i = 0; i < info->nrcpt_info; i++) {
		const struct store_queue_rcpt *ri = &info->rcpt_info[i];
		struct qrcpt *q = &e->rcpts[e->nrcpts++];
		q->addr = strdup(ri->rcpt);
		q->notify = ri->notify;
		q->orcpt = dup_or_null(ri->orcpt);
		q->last_reply = dup_or_null(ri->last_reply);
		q->admin_bounce = ri->state != NULL && strcmp(ri->state, "bounce") == 0;
		if (q->addr == NULL) {
			qentry_free(e);
			return;
		}
	}
	*job->tail = e;
	job->tail = &e->next;
}

/* DKIM-signs entry e (on a worker: RSA is CPU work) with every key of its
 * sender's domain, over exactly what the client will send: the wire copy of
 * the blob before dot-stuffing. No key: nothing to do. A key or message that
 * cannot be signed is logged and the message goes unsigned (it is not held
 * back for it). */
static void entry_sign(struct queue_runner *r, struct qentry *e)
{
	struct dkim_key **keys = NULL;
	struct dkim_signer *signer = NULL;
	size_t nkeys = 0;
	char *err = NULL;
	char *chunk = NULL;
	struct buf wire;
	struct smtp_wire w;
	const char *dom = route_domain(e->sender);

	buf_init(&e->dkim, 0);
	if (dom[0] == '\0' || !e->have_range)
		return;
	if (dkim_keys_load_domain(r->dkim_dir, dom, &keys, &nkeys, &err) < 0) {
		log_error(NULL, "event=dkim-failed queue=%lld domain=%s error=\"%s\"",
		          (long long)e->id, dom, err != NULL ? err : "?");
		free(err);
		return;
	}
	if (nkeys == 0)
		return;
	buf_init(&wire, 0);
	smtp_wire_init(&w, false);
	chunk = malloc(RUNNER_SIGN_STEP);
	if (chunk == NULL || dkim_signer_new(keys, nkeys, time(NULL), &signer, &err) < 0)
		goto fail;
	for (uint64_t off = 0; off < e->range.len;) {
		size_t want = e->range.len - off < RUNNER_SIGN_STEP ? (size_t)(e->range.len - off)
		                                                    : RUNNER_SIGN_STEP;
		ssize_t n = pread(e->range.fd, chunk, want, (off_t)(e->range.off + off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = strdup("cannot read the queued message");
			goto fail;
		}
		buf_reset(&wire);
		if (smtp_wire_encode(&w, chunk, (size_t)n, &wire) < 0)
			goto fail;
		(void)dkim_signer_feed(signer, wire.data, wire.len); /* finish reports it */
		off += (uint64_t)n;
	}
	buf_reset(&wire);
	if (smtp_wire_finish(&w, &wire) < 0)
		goto fail;
	(void)dkim_signer_feed(signer, wire.data, wire.len);
	if (dkim_signer_finish(signer, &e->dkim, &err) < 0)
		goto fail;
	goto out;
fail:
	log_error(NULL, "event=dkim-failed queue=%lld domain=%s error=\"%s\"", (long long)e->id,
	          dom, err != NULL ? err : "out of memory");
	buf_free(&e->dkim);
	buf_init(&e->dkim, 0);
out:
	free(err);
	free(chunk);
	buf_free(&wire);
	dkim_signer_free(&signer);
	dkim_keys_free(&keys, nkeys);
}

static void lease_job_run(void *arg)
{
	struct lease_job *job = arg;
	struct queue_runner *r = job->r;
	int64_t now = time(NULL), when = 0;
	char *err = NULL;

	/* a read first: the write transaction of a lease only when something is due */
	int due = store_queue_next_due(r->st, &when, &err);
	free(err);
	err = NULL;
	if (due < 0 || (due > 0 && when <= now)) {
		job->rc = store_queue_lease(r->st, now, r->owner, RUNNER_LEASE_SECS, job->max,
		                            lease_cb, job, &job->error);
		if (job->rc >= 0 && store_queue_next_due(r->st, &when, &err) <= 0)
			when = 0;
		free(err);
	}
	job->next_due = due != 0 ? when : 0;
	for (struct qentry *e = job->head; e != NULL; e = e->next) {
		int rc = store_blob_open(r->st, e->blob_id, &e->range, &err);
		if (rc > 0) {
			e->have_range = true;
			/* the wire copy starts after our local trace fields */
			if (e->trace_len <= e->range.len) {
				e->range.off += e->trace_len;
				e->range.len -= e->trace_len;
			}
			entry_sign(r, e);
		} else {
			log_error(NULL, "event=queue-blob-missing queue=%lld blob=%s error=\"%s\"",
			          (long long)e->id, e->blob_id, err != NULL ? err : "gone");
		}
		free(err);
		err = NULL;
	}
}

static void runner_arm_timer(struct queue_runner *r, int64_t next_due)
{
	int64_t now = time(NULL);
	int64_t wait = RUNNER_POLL_MAX;
	if (next_due > 0 && next_due - now < wait)
		wait = next_due - now;
	if (wait < 1)
		wait = 1;
	struct timeval tv = {.tv_sec = (time_t)wait, .tv_usec = 0};
	event_add(r->ev_timer, &tv);
}

static void lease_job_done(void *arg)
{
	struct lease_job *job = arg;
	struct queue_runner *r = job->r;

	r->leasing = false;
	if (job->rc < 0) {
		log_error(NULL, "event=queue-lease-failed error=\"%s\"",
		          job->error != NULL ? job->error : "?");
	}
	free(job->error);
	struct qentry *e = job->head;
	while (e != NULL) {
		struct qentry *next = e->next;
		if (atomic_load(&r->stopping)) {
			/* not started: the lease keeps it until the next start */
			qentry_free(e);
			e = next;
			continue;
		}
		e->next = r->inflight;
		r->inflight = e;
		r->nentries++;
		if (e->have_range)
			entry_start(e);
		else
			entry_unreadable(e);
		e = next;
	}
	runner_arm_timer(r, job->next_due);
	free(job);
	if (r->want_pass) {
		r->want_pass = false;
		runner_pass(r);
	}
}

/* Leases what is due, as far as there is room for it. */
static void runner_pass(struct queue_runner *r)
{
	if (atomic_load(&r->stopping))
		return;
	if (r->leasing) {
		r->want_pass = true;
		return;
	}
	size_t room = r->max_conns > r->nentries ? r->max_conns - r->nentries : 0;
	if (room == 0)
		return; /* a finishing entry calls again */
	struct lease_job *job = calloc(1, sizeof(*job));
	if (job == NULL)
		return;
	job->r = r;
	job->max = room;
	job->tail = &job->head;
	r->leasing = true;
	if (worker_pool_submit(r->pool, r->inbox, lease_job_run, lease_job_done, job) < 0) {
		r->leasing = false;
		free(job);
	}
}

static void runner_on_timer(evutil_socket_t fd, short what, void *ctx)
{
	runner_pass(ctx);
}

static void runner_on_counts(evutil_socket_t fd, short what, void *ctx)
{
	struct queue_runner *r = ctx;
	tlsrpt_counts_flush(r->counts);
}

static void runner_report_done(void *ctx, const struct tlsrpt_send_result *res)
{
	struct queue_runner *r = ctx;
	r->report = NULL;
	if (res->reports + res->no_policy + res->deferred + res->failed > 0)
		log_info(NULL, "event=tlsrpt-run reports=%u no_policy=%u deferred=%u failed=%u",
		         res->reports, res->no_policy, res->deferred, res->failed);
}

/* Hourly: the TLS reports of the days that are over (tlsrpt_send.h). */
static void runner_on_report(evutil_socket_t fd, short what, void *ctx)
{
	struct queue_runner *r = ctx;
	struct timeval next = {.tv_sec = RUNNER_TLSRPT_EVERY_SECS};
	event_add(r->ev_report, &next);
	if (r->report != NULL || atomic_load(&r->stopping))
		return;
	char today[TLSRPT_DAY_LEN + 1];
	if (tlsrpt_day(time(NULL), today) < 0)
		return;
	struct tlsrpt_send_params p = {
	    .base = r->base,
	    .dns = r->dns,
	    .pool = r->pool,
	    .inbox = r->inbox,
	    .st = r->st,
	    .hostname = r->hostname,
	    .before = today,
	    .ca_file = r->tls_ca_file,
	};
	char *err = NULL;
	if (tlsrpt_send_start(&p, runner_report_done, r, &r->report, &err) < 0) {
		log_warn(NULL, "event=tlsrpt-failed error=\"%s\"", err != NULL ? err : "?");
		free(err);
	}
}

static void runner_on_kick(evutil_socket_t fd, short what, void *ctx)
{
	struct queue_runner *r = ctx;
	uint64_t v;
	while (read(r->kick_fd, &v, sizeof(v)) > 0)
		;
	if (atomic_load(&r->stopping)) {
		event_base_loopbreak(r->base);
		return;
	}
	runner_pass(r);
}

/* The store's queue hook: any thread. */
static void runner_kick(void *ctx)
{
	struct queue_runner *r = ctx;
	uint64_t one = 1;
	ssize_t n = write(r->kick_fd, &one, sizeof(one));
	(void)n; /* a full counter already means "look" */
}

static void *runner_thread(void *arg)
{
	struct queue_runner *r = arg;
	runner_pass(r);
	event_base_dispatch(r->base);
	return NULL;
}

/* ---- start and stop ---- */

static int runner_fail(char **error_r, const char *fmt, const char *detail)
{
	if (asprintf(error_r, fmt, detail != NULL ? detail : "?") < 0)
		*error_r = NULL;
	return -1;
}

/* The first line of path (without its line end): the smarthost password. */
static int runner_read_password(const char *path, char **pw_r, char **error_r)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	if (f == NULL)
		return runner_fail(error_r, "[delivery] smarthost_password_file: cannot read %s",
		                   path);
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0') {
		OPENSSL_cleanse(line, sizeof(line));
		return runner_fail(error_r, "[delivery] smarthost_password_file: %s is empty", path);
	}
	*pw_r = strdup(line);
	OPENSSL_cleanse(line, sizeof(line));
	if (*pw_r == NULL)
		return runner_fail(error_r, "queue runner: %s", "out of memory");
	return 1;
}

int queue_runner_start(const struct config *cfg, struct store *st, struct worker_pool *pool,
                       struct queue_runner **r_r, char **error_r)
{
	struct queue_runner *r = calloc(1, sizeof(*r));
	char *err = NULL;
	char *host = NULL;
	unsigned port = 0;

	*r_r = NULL;
	if (r == NULL)
		return runner_fail(error_r, "queue runner: %s", "out of memory");
	r->kick_fd = -1;
	r->st = st;
	r->pool = pool;
	r->hostname = strdup(cfg->hostname);
	r->remote_port = cfg->remote_port;
	r->expiry = cfg->expiry;
	r->delay_warning = cfg->delay_warning;
	if (asprintf(&r->dkim_dir, "%s/dkim", cfg->data_dir) < 0) {
		r->dkim_dir = NULL;
		goto fail_oom;
	}
	if (cfg->srs_secret != NULL && (r->srs_secret = strdup(cfg->srs_secret)) == NULL)
		goto fail_oom;
	if (cfg->delivery_tls_ca_file != NULL &&
	    (r->tls_ca_file = strdup(cfg->delivery_tls_ca_file)) == NULL)
		goto fail_oom;
	r->max_conns = cfg->delivery_max_connections;
	r->max_per_domain = cfg->delivery_max_per_domain;
	r->connect_timeout = cfg->delivery_connect_timeout;
	if (config_parse_retry_schedule(cfg->retry_schedule, r->sched, CONFIG_RETRY_MAX,
	                                &r->nsched) < 0)
		r->nsched = 0;
	if (cfg->smarthost != NULL) {
		if (config_parse_hostport(cfg->smarthost, &host, &port) < 0) {
			free(r->hostname);
			free(r);
			return runner_fail(error_r, "[delivery] smarthost: bad address %s",
			                   cfg->smarthost);
		}
		r->smarthost = host;
		r->smarthost_port = port;
	}
	if (cfg->smarthost_user != NULL &&
	    runner_read_password(cfg->smarthost_password_file, &r->smarthost_pass, error_r) < 0) {
		queue_runner_free(&r);
		return -1;
	}
	if (cfg->smarthost_user != NULL && (r->smarthost_user = strdup(cfg->smarthost_user)) == NULL)
		goto fail_oom;
	if (cfg->delivery_source_address != NULL) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&r->source;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->source;
		if (inet_pton(AF_INET, cfg->delivery_source_address, &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
			r->sourcelen = sizeof(*sin);
		} else if (inet_pton(AF_INET6, cfg->delivery_source_address, &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
			r->sourcelen = sizeof(*sin6);
		}
	}
	snprintf(r->owner, sizeof(r->owner), "%s:%d", cfg->hostname, (int)getpid());

	r->base = event_base_new();
	r->inbox = r->base != NULL ? worker_inbox_new(r->base) : NULL;
	r->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r->tls = SSL_CTX_new(TLS_client_method());
	if (r->hostname == NULL || r->base == NULL || r->inbox == NULL || r->kick_fd < 0 ||
	    r->tls == NULL)
		goto fail_oom;
	/* Opportunistic TLS (RFC 7435): encrypt whenever offered, do not insist on a
	 * valid certificate (the result is recorded; MTA-STS/DANE will insist).
	 * The default paths are loaded so that the verification result means
	 * something. */
	SSL_CTX_set_verify(r->tls, SSL_VERIFY_NONE, NULL);
	if (cfg->delivery_tls_ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(r->tls, cfg->delivery_tls_ca_file, NULL) != 1) {
			runner_fail(error_r, "[delivery] tls_ca_file: cannot load %s",
			            cfg->delivery_tls_ca_file);
			queue_runner_free(&r);
			return -1;
		}
	} else {
		SSL_CTX_set_default_verify_paths(r->tls);
	}
	SSL_CTX_set_min_proto_version(r->tls, TLS1_2_VERSION);
	/* DANE (RFC 7672) through OpenSSL's verifier: enabled per connection */
	if (SSL_CTX_dane_enable(r->tls) <= 0)
		goto fail_oom;

	struct dns_options dopts = {.resolver = cfg->resolver, .trust_anchor = cfg->dns_trust_anchor};
	if (dns_resolver_new(r->base, &dopts, &r->dns, &err) < 0) {
		runner_fail(error_r, "queue runner: DNS: %s", err);
		free(err);
		queue_runner_free(&r);
		return -1;
	}
	if ((r->sts = mta_sts_new(r->base, r->dns, pool, r->inbox, st, cfg->delivery_tls_ca_file,
	                          cfg->mta_sts_port, &err)) == NULL) {
		runner_fail(error_r, "queue runner: MTA-STS: %s", err);
		free(err);
		queue_runner_free(&r);
		return -1;
	}
	r->ev_kick = event_new(r->base, r->kick_fd, EV_READ | EV_PERSIST, runner_on_kick, r);
	r->ev_timer = evtimer_new(r->base, runner_on_timer, r);
	if (cfg->tls_reports) {
		struct timeval every = {.tv_sec = RUNNER_TLSRPT_FLUSH_SECS};
		r->counts = tlsrpt_counts_new(st, pool, r->inbox);
		r->ev_counts = event_new(r->base, -1, EV_PERSIST, runner_on_counts, r);
		struct timeval first = {.tv_sec = RUNNER_TLSRPT_FIRST_SECS};
		r->ev_report = evtimer_new(r->base, runner_on_report, r);
		if (r->counts == NULL || r->ev_counts == NULL || r->ev_report == NULL ||
		    event_add(r->ev_counts, &every) < 0 || event_add(r->ev_report, &first) < 0)
			goto fail_oom;
	}
	if (r->ev_kick == NULL || r->ev_timer == NULL || event_add(r->ev_kick, NULL) < 0)
		goto fail_oom;
	/* one process owns the queue: leases of an earlier run are void */
	if (store_queue_release_leases(st, &err) < 0) {
		runner_fail(error_r, "queue runner: %s", err);
		free(err);
		queue_runner_free(&r);
		return -1;
	}
	store_set_queue_hook(st, runner_kick, r);

	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int prc = pthread_create(&r->thread, NULL, runner_thread, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (prc != 0) {
		store_set_queue_hook(st, NULL, NULL);
		runner_fail(error_r, "queue runner: %s", strerror(prc));
		queue_runner_free(&r);
		return -1;
	}
	r->started = true;
	*r_r = r;
	return 1;
fail_oom:
	queue_runner_free(&r);
	return runner_fail(error_r, "queue runner: %s", "cannot set up (out of memory)");
}

void queue_runner_stop(struct queue_runner *r)
{
	if (r == NULL || !r->started)
		return;
	/* ctx stays: a committer reading the hook meanwhile sees fn NULL or a
	 * runner that still exists (it is freed after the pool, before the store) */
	store_set_queue_hook(r->st, NULL, r);
	atomic_store(&r->stopping, true);
	runner_kick(r);
	pthread_join(r->thread, NULL);
	r->started = false;
	/* the loop has ended: end the attempts in flight here (a client with a
	 * read job out is freed by that job's completion, in queue_runner_free) */
	for (struct qentry *e = r->inflight; e != NULL; e = e->next)
		for (size_t i = 0; i < e->ndests; i++) {
			dns_cancel(&e->dests[i]->q);
			smtp_client_cancel(&e->dests[i]->client);
		}
	while (r->idle != NULL) {
		struct idle_conn *ic = r->idle;
		r->idle = ic->next;
		smtp_client_cancel(&ic->client);
		free(ic);
	}
	r->nidle = 0;
	/* a report run: its store job, if out, frees it when it comes back */
	tlsrpt_send_cancel(&r->report);
	if (r->inflight != NULL)
		log_info(NULL, "event=queue-runner-stopped in_flight=%zu", r->nentries);
}

void queue_runner_free(struct queue_runner **rp)
{
	struct queue_runner *r = *rp;
	if (r == NULL)
		return;
	*rp = NULL;
	atomic_store(&r->stopping, true);
	/* completions of jobs that ran meanwhile (records, leases): run them, then
	 * drop what is still in flight (its leases are released at the next start) */
	if (r->inbox != NULL)
		worker_inbox_run(r->inbox);
	while (r->inflight != NULL) {
		struct qentry *e = r->inflight;
		r->inflight = e->next;
		qentry_free(e);
	}
	if (r->ev_kick != NULL)
		event_free(r->ev_kick);
	if (r->ev_timer != NULL)
		event_free(r->ev_timer);
	if (r->ev_counts != NULL)
		event_free(r->ev_counts);
	if (r->ev_report != NULL)
		event_free(r->ev_report);
	tlsrpt_counts_free(&r->counts); /* after the inbox ran: writes what is left */
	mta_sts_free(&r->sts);
	dns_resolver_free(&r->dns);
	worker_inbox_free(&r->inbox);
	if (r->tls != NULL)
		SSL_CTX_free(r->tls);
	if (r->kick_fd >= 0)
		close(r->kick_fd);
	if (r->base != NULL)
		event_base_free(r->base);
	free(r->hostname);
	free(r->smarthost);
	free(r->smarthost_user);
	free(r->srs_secret);
	free(r->tls_ca_file);
	free(r->dkim_dir);
	if (r->smarthost_pass != NULL) {
		OPENSSL_cleanse(r->smarthost_pass, strlen(r->smarthost_pass));
		free(r->smarthost_pass);
	}
	free(r);
}
