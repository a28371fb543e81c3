/* The network server: listeners, connections, connection limits, signals.
 * Protocols plug in through struct proto_ops; a connection's protocol state lives
 * in conn->proto_data. Everything here runs on the loop thread. */
#ifndef HERMOD_NET_SERVER_H
#define HERMOD_NET_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <openssl/ssl.h>

#include "core/worker.h"

struct bufferevent;
struct config;
struct conn;
struct event;
struct event_base;
struct evbuffer_cb_entry;
struct server;
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

struct conn {
	struct server *srv;
	const struct proto_ops *proto;
	void *proto_data;
	struct bufferevent *bev;
	char sid[20];                  /* session id on every log line */
	char ip[INET6_ADDRSTRLEN];     /* peer address, text */
	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	SSL *ssl;        /* set once TLS is on (owned by bev, or by the conn after STARTTLS) */
	struct bufferevent *under; /* after STARTTLS: the socket bufferevent under bev */
	struct tls_server *tls; /* reference held while TLS is on */
	struct event *ev_close;            /* conn_finish with TLS: close from the loop */
	struct evbuffer_cb_entry *under_cb; /* watching the socket under the TLS filter */
	unsigned jobs;   /* worker jobs submitted, completion not yet run */
	bool closing;    /* flushing output, then close */
	bool dead;       /* socket closed; freed once jobs == 0 */
	bool reap_queued; /* on the server's reap list */
	struct conn *prev, *next;
};

struct server {
	struct event_base *base;
	struct config *cfg;
	struct store *store;
	struct worker_pool *pool;      /* store and other blocking work */
	struct worker_pool *auth_pool; /* password hashing, one thread per core */
	struct tls_server *tls;     /* NULL without [tls] cert */
	struct throttle *throttle;  /* authentication failures, shared by all protocols */
	struct ratelimit *ratelimit; /* submission recipients per user and hour */
	struct server_listener *listeners;
	struct conn *conns;
	unsigned nconns;
	struct server_ip_count **ip_counts; /* hash buckets */
	bool stopping;
	struct event *ev_sigterm, *ev_sigint, *ev_sighup, *ev_shutdown, *ev_reap;
	struct conn *reap;      /* dead conns waiting to be freed at a safe point */
	unsigned long next_sid;
};

/* Runs "hermod serve": loads config_path, binds, drops privileges, serves until
 * SIGTERM/SIGINT. Returns the process exit status. */
int server_main(const char *config_path);

/* Queues a blocking job for c. done(arg) always runs on the loop afterwards, also
 * when c has been closed in between (check conn_is_dead and just clean up then). */
int conn_submit(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg);
/* The same on the password-hashing pool (authentication lookups). */
int conn_submit_auth(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg);
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
/* Output not yet written to the socket: the bufferevent's output and, under a
 * TLS filter, the encrypted bytes waiting in the socket bufferevent. */
size_t conn_output_pending(const struct conn *c);
/* Logs what a bufferevent event says about c, the same for every protocol: a
 * finished TLS handshake (event=tls with version and cipher) or a connection
 * error (with OpenSSL's reason). state names the protocol state for the log. */
void conn_log_event(struct conn *c, short what, const char *state);
/* 1 when the peer is on a loopback address (127.0.0.0/8, ::1). */
bool conn_is_loopback(const struct conn *c);
/* Milliseconds on a monotonic clock, for timers and throttling. */
int64_t server_now_ms(void);

/* Called by protocols when a session that was allowed to finish during shutdown
 * has ended; harmless otherwise. */
void server_check_stopped(struct server *srv);

#endif
