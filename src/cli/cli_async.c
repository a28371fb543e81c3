/* CLI event loop, pool and resolver (cli_async.h). */
#include "cli/cli_async.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/worker.h"
#include "dns/dns.h"

int cli_async_open(struct cli_async *a, const struct config *cfg)
{
	struct dns_options opts = {.resolver = cfg->resolver,
	                           .trust_anchor = cfg->dns_trust_anchor};
	char *error = NULL;

	memset(a, 0, sizeof(*a));
	a->base = event_base_new();
	if (a->base == NULL) {
		fprintf(stderr, "hermod: cannot create an event loop\n");
		return -1;
	}
	a->pool = worker_pool_create(1, 0);
	a->inbox = worker_inbox_new(a->base);
	if (a->pool == NULL || a->inbox == NULL) {
		fprintf(stderr, "hermod: cannot start a worker thread\n");
		cli_async_close(a);
		return -1;
	}
	if (dns_resolver_new(a->base, &opts, &a->dns, &error) < 0) {
		fprintf(stderr, "hermod: DNS: %s\n", error != NULL ? error : "cannot start");
		free(error);
		cli_async_close(a);
		return -1;
	}
	return 1;
}

void cli_async_close(struct cli_async *a)
{
	/* jobs finish first; their completions (for nobody now) then run */
	worker_pool_destroy(&a->pool);
	worker_inbox_free(&a->inbox);
	dns_resolver_free(&a->dns);
	if (a->base != NULL)
		event_base_free(a->base);
	a->base = NULL;
}
