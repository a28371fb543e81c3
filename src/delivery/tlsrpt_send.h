/* The daily TLS reports (RFC 8460 5; docs/delivery.md): the counts of the days
 * that are over (store_tlsrpt_list) become one report per day and policy
 * domain that publishes a reporting policy (TXT at _smtp._tls.DOMAIN), mailed
 * to its mailto: addresses: into a local mailbox, or through the outbound
 * queue. The counts of a day and domain are removed once its report is queued
 * or when the domain wants none. Runs on one event loop; every store call on
 * the worker pool. */
#ifndef HERMOD_DELIVERY_TLSRPT_SEND_H
#define HERMOD_DELIVERY_TLSRPT_SEND_H

#include <time.h>

struct event_base;
struct dns_resolver;
struct store;
struct worker_pool;
struct worker_inbox;
struct tlsrpt_send;

/* Rows of one call at most (the rest goes next time). */
#define TLSRPT_SEND_ROWS_MAX 100000
/* Counts of a day this many days old are dropped when the domain's policy
 * still cannot be looked up. */
#define TLSRPT_SEND_KEEP_DAYS 3

struct tlsrpt_send_params {
	struct event_base *base;
	struct dns_resolver *dns;
	struct worker_pool *pool;
	struct worker_inbox *inbox;
	struct store *st;
	const char *hostname; /* organization-name, submitter, the From: domain */
	const char *before;   /* "YYYY-MM-DD": the days before it are reported */
	const char *ca_file;  /* https: reports: the CA file ([delivery] tls_ca_file);
	                       * NULL: the system store */
};

struct tlsrpt_send_result {
	unsigned reports;   /* reports stored, queued or posted (one per address) */
	unsigned no_policy; /* day and domain pairs whose domain wants no report */
	unsigned deferred;  /* pairs kept for later (DNS temporary failure) */
	unsigned failed;    /* pairs that could not be reported (kept) */
};

typedef void tlsrpt_send_done(void *ctx, const struct tlsrpt_send_result *res);

/* Starts a run; done is called once, later, on base's loop (unless cancelled).
 * params are copied. 1 ok, -1 with *error_r (malloc'd). */
int tlsrpt_send_start(const struct tlsrpt_send_params *p, tlsrpt_send_done *done, void *ctx,
                      struct tlsrpt_send **s_r, char **error_r);
/* Stops a run: done is not called. A store job still out frees it when it
 * comes back. NULL ok. */
void tlsrpt_send_cancel(struct tlsrpt_send **s);

#endif
