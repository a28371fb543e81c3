/* hermod mta-sts lookup: see cli_mta_sts.h. The lookup runs as in the server:
 * on an event loop of its own, store calls on a worker pool of one thread. */
#include "cli/cli_mta_sts.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_async.h"
#include "core/config.h"
#include "delivery/mta_sts.h"

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
	struct cli_sts_wait w = {.ret = CLI_EXIT_ERROR};
	struct cli_async a;
	struct mta_sts_ctx *sts = NULL;
	char *error = NULL;

	if (cli_async_open(&a, cfg) < 0)
		return CLI_EXIT_ERROR;
	w.base = a.base;
	if ((sts = mta_sts_new(a.base, a.dns, a.pool, a.inbox, st, cfg->delivery_tls_ca_file,
	                       cfg->mta_sts_port, &error)) == NULL ||
	    mta_sts_lookup(sts, domain, cli_sts_done, &w, NULL, &error) < 0) {
		fprintf(stderr, "hermod: %s\n", error != NULL ? error : "MTA-STS lookup failed");
		free(error);
		goto out;
	}
	event_base_dispatch(a.base);
out:
	mta_sts_free(&sts);
	cli_async_close(&a);
	return w.ret;
}
