/* What the authentication exchange (auth/auth_exchange.h) needs from the program
 * around it, handed in instead of reached for: the shared brute-force throttle,
 * the store the credential lookup reads, and how to run that lookup on the
 * password-hashing pool. The server fills one at start-up and every connection
 * points at it (conn->auth). */
#ifndef HERMOD_AUTH_AUTH_CTX_H
#define HERMOD_AUTH_AUTH_CTX_H

#include <stdint.h>

#include "core/worker.h"

struct conn;
struct store;
struct throttle;

struct auth_ctx {
	struct throttle *throttle; /* shared by every loop (locked inside) */
	struct store *store;       /* read by the lookup job on a worker thread */
	/* Queues job on the password-hashing pool; done(arg) runs afterwards on the
	 * loop that owns c, also when c has been closed meanwhile. 1 ok, -1 error. */
	int (*submit)(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg);
	int64_t (*now_ms)(void); /* monotonic milliseconds, for the throttle */
};

#endif
