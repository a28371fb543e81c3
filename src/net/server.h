/* The network server: event loops, listeners, connections, connection limits,
 * signals. It knows no protocol: the program hands it a table that maps [listen]
 * keys to struct proto_ops (src/serve.c), and a connection's protocol state lives
 * in conn->proto_data.
 *
 * Threads: [server] threads event loops (struct loop), each on its own thread,
 * each owning the connections it was given; a connection never moves. The main
 * thread accepts on every listener and hands each new socket to the loop with the
 * fewest connections; it also handles the signals (SIGHUP's reload runs there,
 * off the loops). Every callback of a connection, and every worker completion
 * for it, runs on its loop's thread. See docs/architecture.md. */
#ifndef HERMOD_NET_SERVER_H
#define HERMOD_NET_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <openssl/ssl.h>

#include "core/worker.h"

struct auth_ctx;
struct bufferevent;
struct config;
struct conn;
struct event;
struct event_base;
struct evbuffer_cb_entry;
struct server;
struct server_gen;
struct server_batch;
struct server_handoff;
struct dict;
struct server_listener;
struct store;

struct proto_ops {
	const char *name;
	/* Takes over a new connection (c->bev set up, not yet enabled). -1: refuse
	 * (the connection is then closed). */
	int (*start)(struct conn *c);
	/* The server is stopping: end idle sessions now (with the protocol's goodbye),
	 * let running transactions finish and end the session afterwards. */
	void (*shutdown)(struct conn *c);
	/* Frees c->proto_data. Called once, when no worker job is pending. */
	void (*free)(struct conn *c);
	/* Sent verbatim before closing a connection refused by a connection limit. */
	const char *overload_reply;
	bool implicit_tls; /* TLS from the first byte (465, 993, 995) */
};

/* One event loop and its thread. The public fields are read by protocol code on
 * this loop's thread only. */
struct loop {
	struct server *srv;
	unsigned idx;
	struct event_base *base;
	/* This loop's view of the configuration and certificates: replaced between
	 * callbacks after a reload, so a session reads them when it starts and copies
	 * what it keeps. */
	const struct config *cfg;
	struct tls_server *tls; /* NULL without [tls] cert */

	/* the rest: server.c only */
	pthread_t thread;
	bool started;
	struct server_gen *gen;     /* holds cfg and tls */
	struct worker_inbox *inbox; /* completions of jobs submitted here */
	struct conn *conns;         /* live connections */
	struct conn *reap;          /* dead ones waiting to be freed at a safe point */
	struct server_batch *batch; /* conn_submit_batched jobs of this pass */
	struct event *ev_batch;     /* submits batch once this pass's callbacks ran */
	struct event *ev_reap, *ev_wake, *ev_shutdown;
	int wake_fd;                    /* eventfd: new sockets, reload, stop */
	pthread_mutex_t lock;           /* guards handoff */
	struct server_handoff *handoff; /* sockets accepted for this loop */
	atomic_uint nconns;             /* read by the acceptor to pick a loop */
	atomic_bool want_reload, want_stop;
	bool stopping;
};

struct conn {
	struct server *srv;
	struct loop *loop;           /* the loop that owns this connection */
	const struct auth_ctx *auth; /* for auth/auth_exchange.h */
	const struct proto_ops *proto;
	struct server_listener *listener;
	void *proto_data;
	struct bufferevent *bev;
	char sid[20];              /* session id on every log line, unique (see below) */
	char ip[INET6_ADDRSTRLEN]; /* peer address, text */
	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	SSL *ssl;        /* set once TLS is on (owned by bev, or by the conn after STARTTLS) */
	struct bufferevent *under; /* after STARTTLS: the socket bufferevent under bev */
	struct zfilter *zf;        /* after COMPRESS: the filter that is bev (goes with it) */
	struct tls_server *tls; /* reference held while TLS is on */
	struct event *ev_close;            /* conn_finish with TLS: close from the loop */
	struct evbuffer_cb_entry *under_cb; /* watching the socket under the TLS filter */
	unsigned jobs;                      /* worker jobs submitted, completion not yet run */
	bool closing;                       /* flushing output, then close */
	bool dead;                          /* socket closed; freed once jobs == 0 */
	bool reap_queued;                   /* on the loop's reap list */
	struct conn *prev, *next;
};

struct server {
	struct store *store;         /* thread-safe; used from worker jobs */
	struct throttle *throttle;   /* authentication failures, all protocols (locked inside) */
	struct ratelimit *ratelimit; /* submission recipients per user and hour (locked inside) */

	/* the rest: server.c only */
	const struct server_app *app;
	struct config *cfg;      /* the main thread's (newest) config */
	struct event_base *base; /* main thread: listeners and signals */
	struct loop *loops;
	unsigned nloops;
	struct worker_pool *pool;      /* store and other blocking work */
	struct worker_pool *auth_pool; /* password hashing, one thread per core */
	struct auth_ctx *auth;
	struct server_listener *listeners;
	pthread_mutex_t gen_lock;   /* guards gen */
	struct server_gen *gen;     /* newest config + certificates */
	pthread_mutex_t count_lock; /* guards the counts: nconns, ip_counts, listener counts */
	unsigned nconns;
	struct dict *ip_counts; /* client address text -> unsigned count (core/dict) */
	atomic_bool stopping;
	unsigned loops_running; /* main thread */
	struct event *ev_sigterm, *ev_sigint, *ev_sighup;
};

/* What a service started by the server may use: store and pool until its
 * cleanup, cfg during start only (a reload replaces it: copy what is kept). */
struct server_services {
	const struct config *cfg; /* the configuration at start-up */
	struct store *store;
	struct worker_pool *pool;
};

/* The program around the server: which protocol serves a [listen] key. */
struct server_app {
	/* The protocol of a [listen] key, NULL when none implements it. */
	const struct proto_ops *(*proto_for)(const char *key);
	/* Validates what the server cannot (the registry's view of [listen]); run at
	 * start-up and on every reload. -1 with *error_r ("FILE:LINE: ..."). */
	int (*check)(const struct config *cfg, char **error_r);
	/* Applies the settings that live outside the server object (the SASL
	 * mechanisms to offer): at start-up before any connection is served, and
	 * after every successful reload. Optional. */
	void (*apply)(const struct config *cfg);
	/* Services that run beside the listeners (the outbound queue runner), all
	 * optional: start once the store and the worker pool exist, before the
	 * first connection (-1 with *error_r stops the server); stop when the
	 * loops have ended, before the pool is torn down (its jobs may still
	 * complete); cleanup after the pool has ended, before the store closes. */
	int (*start)(const struct server_services *s, char **error_r);
	void (*stop)(void);
	void (*cleanup)(void);
};

/* Runs "hermod serve": loads config_path, binds, drops privileges, serves until
 * SIGTERM/SIGINT. Returns the process exit status. */
int server_main(const char *config_path, const struct server_app *app);

/* Queues a blocking job for c. done(arg) always runs on c's loop afterwards, also
 * when c has been closed in between (check conn_is_dead and just clean up then). */
int conn_submit(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg);
/* The same on the password-hashing pool (authentication lookups). */
int conn_submit_auth(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg);
/* conn_submit for a short store read (a recipient lookup): the jobs submitted
 * this way on one loop while it runs one pass of its ready callbacks go to the
 * pool together, run one after the other on one worker, and their completions
 * come back together: one thread hop (one wake-up of a worker and one of the
 * loop) for every session that asked in that pass, instead of one each. Only for
 * jobs that take well under a millisecond: they wait for each other. Same
 * contract as conn_submit otherwise (done always runs on c's loop). */
int conn_submit_batched(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg);
/* A store job with no completion of its own: for a job that ends in a posted
 * completion (worker_inbox_post to c->loop->inbox, e.g. from the store's
 * committer). The caller has called conn_hold(c) and the posted completion calls
 * conn_release(c). Saves the loop a wake-up per job. 1 ok, -1 out of memory. */
int conn_submit_detached(struct conn *c, worker_job_fn *job, void *arg);
/* Work whose completion arrives later than its job (a delivery the store's
 * committer completes and posts to c->loop->inbox): conn_hold keeps c (and its
 * proto_data) allocated, like a pending job, until the matching conn_release,
 * which the completion calls on c's loop. Loop thread only. */
void conn_hold(struct conn *c);
void conn_release(struct conn *c);
bool conn_is_dead(const struct conn *c);
/* Sends what is queued in the output buffer, then closes. */
void conn_finish(struct conn *c);
/* Closes now (output discarded); memory is freed later at a safe point. */
void conn_close(struct conn *c);
/* STARTTLS: switches c to TLS as the server side. The caller has queued its
 * "go ahead" reply and discarded buffered input; c->bev is replaced (callbacks and
 * timeouts must be set again). 1 ok; -1 failure: c->bev is unchanged and the
 * caller closes the connection (conn_close). */
int conn_start_tls(struct conn *c);
/* COMPRESS=DEFLATE (RFC 4978, net/zfilter.h): from now on c's output is
 * deflated and its input inflated, over whatever is under (TLS stays under the
 * compression). What is already queued in the output goes out uncompressed (the
 * OK that accepted the command); input already buffered is taken as compressed.
 * c->bev is replaced (callbacks and timeouts must be set again). 1 ok; -1
 * failure (out of memory, or compression is on already): c->bev is unchanged.
 * STARTTLS is refused once compression is on (conn_start_tls -1). */
int conn_start_compress(struct conn *c);
/* The bufferevent at the socket: c->bev, or the lowest layer under its filters. */
struct bufferevent *conn_bottom(const struct conn *c);
/* Output not yet written to the socket: the output of every layer from c->bev
 * down to the socket (a TLS filter's encrypted records, what a COMPRESS filter
 * holds inside zlib). */
size_t conn_output_pending(const struct conn *c);
/* Logs what a bufferevent event says about c, the same for every protocol: a
 * finished TLS handshake (event=tls with version and cipher) or a connection
 * error (with OpenSSL's reason). state names the protocol state for the log. */
void conn_log_event(struct conn *c, short what, const char *state);
/* 1 when the peer is on a loopback address (127.0.0.0/8, ::1). */
bool conn_is_loopback(const struct conn *c);
/* Milliseconds on a monotonic clock, for timers and throttling. */
int64_t server_now_ms(void);

/* Session ids: a per-process random 48-bit node id and a counter, in base32
 * (lowercase letters and digits, at most 19 characters): unique within a
 * process, and across processes and restarts but for a 2^-48 chance. Thread-safe.
 * Used for conn->sid; SMTP builds queue and Message-ID values from it. */
void server_sid_next(char out[20]);

/* Called by protocols when a session that was allowed to finish during shutdown
 * has ended; harmless otherwise. */
void server_check_stopped(struct loop *loop);

#endif
