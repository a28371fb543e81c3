/* hermod mta-sts lookup: see cli_mta_sts.h. The lookup runs as in the server:
 * on an event loop of its own, store calls on a worker pool of one thread. */
#include "cli/cli_mta_sts.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/worker.h"
#include "delivery/mta_sts.h"
#include "dns/dns.h"

struct cli_sts_wait {
	struct event_base *base;
	int ret;
};

static void cli_sts_done(void *ctx, const struct mta_sts_policy *pol, const char *reason)
{
	struct cli_sts_wait *w = ctx;

	if (pol != NULL) {
		printf("mode %s\nid %s\nmax_age %u\n", mta_sts_mode_name(pol->mode), pol->id,
		       pol->max_age);
		for (size_t i = 0; i < pol->nmx; i++)
			printf("mx %s\n", pol->mx[i]);
		printf("; %s\n", reason);
		w->ret = CLI_EXIT_OK;
	} else {
		printf("; no policy: %s\n", reason);
		w->ret = CLI_EXIT_ERROR;
	}
	event_base_loopbreak(w->base);
}

int cli_mta_sts_lookup(const struct config *cfg, struct store *st, const char *domain)
{
	struct dns_options opts = {.resolver = cfg->resolver,
	                           .trust_anchor = cfg->dns_trust_anchor};
	struct cli_sts_wait w = {.ret = CLI_EXIT_ERROR};
	struct dns_resolver *r = NULL;
	struct worker_pool *pool = NULL;
	struct worker_inbox *inbox = NULL;
	struct mta_sts_ctx *sts = NULL;
	char *error = NULL;

	w.base = event_base_new();
	if (w.base == NULL) {
		fprintf(stderr, "hermod: cannot create an event loop\n");
		return CLI_EXIT_ERROR;
	}
	pool = worker_pool_create(1, 0);
	inbox = worker_inbox_new(w.base);
	if (pool == NULL || inbox == NULL) {
		fprintf(stderr, "hermod: cannot start a worker thread\n");
		goto out;
	}
	if (dns_resolver_new(w.base, &opts, &r, &error) < 0 ||
	    (sts = mta_sts_new(w.base, r, pool, inbox, st, cfg->delivery_tls_ca_file,
	                       cfg->mta_sts_port, &error)) == NULL ||
	    mta_sts_lookup(sts, domain, cli_sts_done, &w, NULL, &error) < 0) {
		fprintf(stderr, "hermod: %s\n", error != NULL ? error : "MTA-STS lookup failed");
		free(error);
		goto out;
	}
	event_base_dispatch(w.base);
out:
	mta_sts_free(&sts);
	/* jobs finish first; their completions (for nobody now) then run */
	worker_pool_destroy(&pool);
	worker_inbox_free(&inbox);
	dns_resolver_free(&r);
	event_base_free(w.base);
	return w.ret;
}
