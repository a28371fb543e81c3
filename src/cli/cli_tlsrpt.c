/* hermod tls-report (cli_tlsrpt.h). */
#include "cli/cli_tlsrpt.h"

#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "cli/cli.h"
#include "cli/cli_async.h"
#include "core/config.h"
#include "delivery/tlsrpt_send.h"
#include "store/store.h"

static const char *dash(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "-";
}

static void print_row(void *ctx, const struct store_tlsrpt_row *r)
{
	printf("%s %s %s %s %s %s %s %llu\n", r->day, r->domain, r->policy_type, dash(r->mx),
	       dash(r->result), dash(r->sending_ip), dash(r->receiving_ip),
	       (unsigned long long)r->count);
}

int cli_tlsrpt_list(struct store *st)
{
	char *error = NULL;
	if (store_tlsrpt_list(st, "9999-12-31", print_row, NULL, &error) < 0) {
		fprintf(stderr, "hermod: %s\n", error != NULL ? error : "cannot read the counts");
		free(error);
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

struct cli_tlsrpt_wait {
	struct event_base *base;
	struct tlsrpt_send_result res;
	int ret;
};

static void cli_tlsrpt_done(void *ctx, const struct tlsrpt_send_result *res)
{
	struct cli_tlsrpt_wait *w = ctx;
	w->res = *res;
	w->ret = res->failed > 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
	event_base_loopbreak(w->base);
}

int cli_tlsrpt_send(const struct config *cfg, struct store *st, const char *before)
{
	struct cli_tlsrpt_wait w = {.ret = CLI_EXIT_ERROR};
	struct cli_async a;
	char *error = NULL;

	if (cli_async_open(&a, cfg) < 0)
		return CLI_EXIT_ERROR;
	w.base = a.base;
	struct tlsrpt_send_params p = {
	    .base = a.base,
	    .dns = a.dns,
	    .pool = a.pool,
	    .inbox = a.inbox,
	    .st = st,
	    .hostname = cfg->hostname,
	    .before = before,
	    .ca_file = cfg->delivery_tls_ca_file,
	};
	struct tlsrpt_send *s = NULL;
	if (tlsrpt_send_start(&p, cli_tlsrpt_done, &w, &s, &error) < 0) {
		fprintf(stderr, "hermod: %s\n", error != NULL ? error : "cannot start");
		free(error);
	} else {
		event_base_dispatch(a.base);
		printf("reports %u, no policy %u, deferred %u, failed %u\n", w.res.reports,
		       w.res.no_policy, w.res.deferred, w.res.failed);
	}
	cli_async_close(&a);
	return w.ret;
}
