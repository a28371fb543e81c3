/* What a CLI verb that runs server code needs: an event loop, a worker pool of
 * one thread with the loop's inbox, and the config's resolver. */
#ifndef HERMOD_CLI_CLI_ASYNC_H
#define HERMOD_CLI_CLI_ASYNC_H

struct config;
struct event_base;
struct worker_pool;
struct worker_inbox;
struct dns_resolver;

struct cli_async {
	struct event_base *base;
	struct worker_pool *pool;
	struct worker_inbox *inbox;
	struct dns_resolver *dns;
};

/* 1 ok; -1 after one "hermod: " line on stderr (a is then closed). */
int cli_async_open(struct cli_async *a, const struct config *cfg);
/* Waits for the pool's jobs, runs their completions, frees. Safe on a zeroed
 * or closed a. */
void cli_async_close(struct cli_async *a);

#endif
