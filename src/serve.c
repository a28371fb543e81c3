#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/sasl.h"
#include "core/config.h"
#include "delivery/queue_runner.h"
#include "imap/imap_session.h"
#include "net/server.h"
#include "pop3/pop3_session.h"
#include "smtp/smtp_session.h"

/* [listen] key -> protocol. A key that config.c knows but that has no row here
 * (http today) is refused by serve_check, so that a configured
 * listener never silently does nothing. */
static const struct serve_proto {
	const char *key;
	const struct proto_ops *ops;
} serve_protos[] = {
    {"smtp", &smtp_proto}, {"submission", &submission_proto}, {"submissions", &submissions_proto},
    {"pop3", &pop3_proto}, {"pop3s", &pop3s_proto}, {"imap", &imap_proto},
    {"imaps", &imaps_proto},
};

const struct proto_ops *serve_proto_for(const char *key)
{
	for (size_t i = 0; i < sizeof(serve_protos) / sizeof(serve_protos[0]); i++)
		if (strcmp(serve_protos[i].key, key) == 0)
			return serve_protos[i].ops;
	return NULL;
}

int serve_check(const struct config *cfg, char **error_r)
{
	for (unsigned i = 0; i < cfg->nlisten; i++) {
		const struct config_listen *l = &cfg->listen[i];
		if (serve_proto_for(l->key) != NULL)
			continue;
		if (asprintf(error_r,
		             "%s:%d: [listen] %s: no protocol implements this listener yet "
		             "(leave it empty or remove it)",
		             cfg->path, l->line, l->key) < 0)
			*error_r = NULL;
		return -1;
	}
	return 1;
}

/* [auth] mechanisms: what every protocol offers (auth/sasl.c keeps it in one
 * atomic, so a reload can change it while the loops run). */
static void serve_apply(const struct config *cfg)
{
	sasl_mechs_set(cfg->auth_mechanisms);
}

/* The outbound queue runner: one per process, beside the listeners. */
static struct queue_runner *serve_runner;

static int serve_start(const struct server_services *svc, char **error_r)
{
	return queue_runner_start(svc->cfg, svc->store, svc->pool, &serve_runner, error_r);
}

static void serve_stop(void)
{
	queue_runner_stop(serve_runner);
}

static void serve_cleanup(void)
{
	queue_runner_free(&serve_runner);
}

static const struct server_app serve_app = {
    .proto_for = serve_proto_for,
    .check = serve_check,
    .apply = serve_apply,
    .start = serve_start,
    .stop = serve_stop,
    .cleanup = serve_cleanup,
};

int serve_main(const char *config_path)
{
	int status = server_main(config_path, &serve_app);
	pop3_session_cleanup(); /* after every loop has ended and every session is freed */
	return status;
}
