#include "net/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth_ctx.h"
#include "auth/ratelimit.h"
#include "auth/throttle.h"
#include "core/config.h"
#include "core/dict.h"
#include "core/log.h"
#include "core/version.h"
#include "net/tls.h"
#include "net/zfilter.h"
#include "store/store.h"

#define SERVER_MAX_LOOPS 256
/* Accept back-off when the process or system is out of file descriptors (or
 * memory): the listener pauses, doubling from the first to the last value. */
#define SERVER_ACCEPT_PAUSE_MIN_MS 100
#define SERVER_ACCEPT_PAUSE_MAX_MS 1000
/* File descriptors beyond one per connection: listeners, the store (SQLite and its
 * WAL per worker, blob files being read or written), eventfds and epoll per loop,
 * log and config files, and a margin. */
#define SERVER_FD_MARGIN 64

struct server_listener {
	struct server_listener *next;
	struct server *srv;
	const struct proto_ops *proto;
	struct evconnlistener *lev;
	struct event *ev_resume; /* accept back-off */
	unsigned pause_ms;       /* next back-off; 0 = not backing off */
	char *key;
	char *addr;
	unsigned max_conns; /* [limits] max_connections_<key> */
	unsigned nconns;    /* guarded by srv->count_lock */
};

/* A socket accepted on the main thread, on its way to a loop. */
struct server_handoff {
	struct server_handoff *next;
	evutil_socket_t fd;
	struct server_listener *l;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char ip[INET6_ADDRSTRLEN];
};

/* One generation of configuration and certificates. The main thread makes a new
 * one on SIGHUP; each loop takes a reference when it picks the new one up and
 * drops the old one, and the last reference frees it. */
struct server_gen {
	atomic_int refs;
	struct config *cfg;
	struct tls_server *tls;
};

static struct server_gen *server_gen_ref(struct server_gen *g)
{
	atomic_fetch_add(&g->refs, 1);
	return g;
}

static void server_gen_unref(struct server_gen **gp)
{
	struct server_gen *g = *gp;
	*gp = NULL;
	if (g == NULL || atomic_fetch_sub(&g->refs, 1) > 1)
		return;
	config_free(&g->cfg);
	tls_server_unref(&g->tls);
	free(g);
}

/* ---- session ids ---- */

static const char server_b32[] = "0123456789abcdefghijkmnpqrstvwxyz"; /* no l, o, u */
static uint64_t server_node_id; /* 48 random bits, set once at start-up */
static atomic_uint_fast64_t server_sid_counter;
static pthread_once_t server_node_once = PTHREAD_ONCE_INIT;

static void server_node_init(void)
{
	uint64_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		/* no entropy source: fall back to time and pid, still distinct per start */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
	}
	server_node_id = r & ((UINT64_C(1) << 48) - 1);
}

/* Counter first (it changes from line to line, so ids are easy to tell apart in a
 * log), then the node id (10 characters for 48 bits): "0007" + "k3j9d8w2xp". */
void server_sid_next(char out[20])
{
	pthread_once(&server_node_once, server_node_init);
	uint64_t n = atomic_fetch_add(&server_sid_counter, 1);
	char tmp[16];
	size_t len = 0;
	do {
		tmp[len++] = server_b32[n & 31];
		n >>= 5;
	} while (n != 0 && len < 9);
	while (len < 4)
		tmp[len++] = '0';
	size_t o = 0;
	while (len > 0)
		out[o++] = tmp[--len];
	uint64_t node = server_node_id;
	for (int i = 9; i >= 0; i--) {
		out[o + (size_t)i] = server_b32[node & 31];
		node >>= 5;
	}
	out[o + 10] = '\0';
}

/* ---- connection counts (shared by the acceptor and every loop) ---- */

enum server_admit {
	SERVER_ADMIT_OK,
	SERVER_ADMIT_GLOBAL,   /* max_connections */
	SERVER_ADMIT_LISTENER, /* max_connections_<listener> */
	SERVER_ADMIT_IP,       /* max_connections_per_ip */
	SERVER_ADMIT_NOMEM,
	SERVER_ADMIT_IP_TABLE_FULL, /* cannot happen while max_connections bounds it */
};

/* Checks every limit and counts the connection in, in one step. The per-IP table
 * (core/dict, key: the address text, value: its count) holds only addresses with a
 * connection, so it never has more entries than there are connections; its bound
 * follows max_connections, and a full table refuses the connection. */
static enum server_admit server_count_in(struct server *srv, struct server_listener *l,
                                         const char *ip)
{
	const struct config *cfg = srv->cfg; /* main thread: the newest limits */
	enum server_admit r = SERVER_ADMIT_OK;
	size_t iplen = strlen(ip);
	pthread_mutex_lock(&srv->count_lock);
	unsigned *count = dict_get(srv->ip_counts, ip, iplen);
	if (srv->nconns >= cfg->max_connections)
		r = SERVER_ADMIT_GLOBAL;
	else if (l->nconns >= l->max_conns)
		r = SERVER_ADMIT_LISTENER;
	else if (count != NULL && *count >= cfg->max_connections_per_ip)
		r = SERVER_ADMIT_IP;
	else if (count == NULL) {
		dict_set_max(srv->ip_counts, cfg->max_connections > 0 ? cfg->max_connections : 1);
		count = dict_put(srv->ip_counts, ip, iplen, NULL);
		if (count == NULL)
			r = dict_count(srv->ip_counts) >= cfg->max_connections
			        ? SERVER_ADMIT_IP_TABLE_FULL
			        : SERVER_ADMIT_NOMEM;
	}
	if (r == SERVER_ADMIT_OK) {
		(*count)++;
		srv->nconns++;
		l->nconns++;
	}
	pthread_mutex_unlock(&srv->count_lock);
	return r;
}

static void server_count_out(struct server *srv, struct server_listener *l, const char *ip)
{
	size_t iplen = strlen(ip);
	pthread_mutex_lock(&srv->count_lock);
	unsigned *count = dict_get(srv->ip_counts, ip, iplen);
	if (count != NULL && --*count == 0)
		dict_delete_value(srv->ip_counts, count);
	srv->nconns--;
	if (l != NULL) /* NULL: a connection made outside a listener (unit tests) */
		l->nconns--;
	pthread_mutex_unlock(&srv->count_lock);
}

static unsigned server_count_total(struct server *srv)
{
	pthread_mutex_lock(&srv->count_lock);
	unsigned n = srv->nconns;
	pthread_mutex_unlock(&srv->count_lock);
	return n;
}

/* ---- connections (each on its loop's thread) ---- */

/* A closed connection with no job pending is freed at the next safe point of
 * the loop. Queued once, however many paths get here. */
static void conn_reap_if_done(struct conn *c)
{
	if (!c->dead || c->jobs > 0 || c->reap_queued)
		return;
	c->reap_queued = true;
	c->next = c->loop->reap;
	c->loop->reap = c;
	event_active(c->loop->ev_reap, EV_TIMEOUT, 0);
}

bool conn_is_dead(const struct conn *c)
{
	return c->dead;
}

static void conn_free(struct conn *c)
{
	struct loop *loop = c->loop;
	if (c->proto != NULL && c->proto->free != NULL)
		c->proto->free(c);
	tls_server_unref(&c->tls);
	if (c->ev_close != NULL)
		event_free(c->ev_close);
	free(c);
	server_check_stopped(loop);
}

static void loop_on_reap(evutil_socket_t fd, short what, void *ctx)
{
	struct loop *loop = ctx;
	struct conn *c = loop->reap;
	loop->reap = NULL;
	while (c != NULL) {
		struct conn *next = c->next;
		conn_free(c);
		c = next;
	}
}

void conn_close(struct conn *c)
{
	if (c->dead)
		return;
	struct loop *loop = c->loop;
	c->dead = true;
	if (c->bev != NULL && c->ssl != NULL && c->closing) {
		/* A goodbye: send TLS close_notify (clients such as openssl s_client
		 * treat a bare TCP close as truncation). Best effort, never waits. */
		SSL_shutdown(c->ssl);
		struct bufferevent *under = c->under; /* the socket under a STARTTLS filter */
		if (under != NULL) {
			/* a bufferevent freezes the front of its output; it is going away,
			 * so write the close_notify record out directly */
			struct evbuffer *out = bufferevent_get_output(under);
			evbuffer_unfreeze(out, 1);
			evbuffer_write(out, bufferevent_getfd(under));
		}
	}
	if (c->bev != NULL) {
		struct bufferevent *bottom = conn_bottom(c);
		if (c->under_cb != NULL && bottom != c->bev)
			evbuffer_remove_cb_entry(bufferevent_get_output(bottom), c->under_cb);
		c->under_cb = NULL;
		/* a COMPRESS filter frees the layer under it (and goes with its zfilter) */
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->zf = NULL;
		if (c->under != NULL) {
			/* STARTTLS: the filter owned neither the socket nor the SSL */
			bufferevent_free(c->under);
			c->under = NULL;
			SSL_free(c->ssl);
			c->ssl = NULL;
		}
	}
	server_count_out(c->srv, c->listener, c->ip);
	atomic_fetch_sub(&loop->nconns, 1);
	/* unlink from the live list */
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		loop->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	log_info(c->sid, "event=disconnect");
	conn_reap_if_done(c);
}

struct bufferevent *conn_bottom(const struct conn *c)
{
	struct bufferevent *b = c->bev, *u;
	while (b != NULL && (u = bufferevent_get_underlying(b)) != NULL)
		b = u;
	return b;
}

size_t conn_output_pending(const struct conn *c)
{
	size_t n = 0;
	for (struct bufferevent *b = c->bev; b != NULL; b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	if (c->zf != NULL)
		n += zfilter_pending(c->zf);
	return n;
}

static void conn_on_flushed(struct bufferevent *bev, void *ctx)
{
	struct conn *c = ctx;
	/* with TLS the records may still sit in the socket's buffer */
	if (conn_output_pending(c) == 0)
		conn_close(c);
}

static void conn_on_flush_event(struct bufferevent *bev, short what, void *ctx)
{
	if (what == BEV_EVENT_CONNECTED) /* a TLS handshake ending now: keep flushing */
		return;
	conn_close(ctx);
}

static void conn_on_close_event(evutil_socket_t fd, short what, void *ctx)
{
	conn_close(ctx);
}

/* The socket under a TLS filter drained: close from the loop, not from inside
 * the buffer's callback. */
static void conn_on_under_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                                  void *ctx)
{
	struct conn *c = ctx;
	if (info->n_deleted > 0 && !c->dead && conn_output_pending(c) == 0 && c->ev_close != NULL)
		event_active(c->ev_close, EV_TIMEOUT, 0);
}

void conn_finish(struct conn *c)
{
	if (c->dead || c->closing)
		return;
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	if (c->zf != NULL)
		zfilter_flush(c->zf); /* the goodbye may still be inside zlib */
	if (conn_output_pending(c) == 0) {
		conn_close(c);
		return;
	}
	bufferevent_setcb(c->bev, NULL, conn_on_flushed, conn_on_flush_event, c);
	bufferevent_enable(c->bev, EV_WRITE);
	struct bufferevent *under = conn_bottom(c);
	if (under != c->bev) {
		c->ev_close = event_new(c->loop->base, -1, 0, conn_on_close_event, c);
		if (c->ev_close != NULL)
			c->under_cb = evbuffer_add_cb(bufferevent_get_output(under),
			                              conn_on_under_drained, c);
	}
}

struct conn_job {
	struct conn_job *next; /* in a struct server_batch */
	struct conn *c;
	worker_job_fn *job;
	worker_done_fn *done;
	void *arg;
};

static void conn_job_run(void *ctx)
{
	struct conn_job *cj = ctx;
	cj->job(cj->arg);
}

static void conn_job_done(void *ctx)
{
	struct conn_job *cj = ctx;
	struct conn *c = cj->c;
	c->jobs--;
	if (cj->done != NULL)
		cj->done(cj->arg); /* may close c */
	free(cj);
	conn_reap_if_done(c);
}

static int conn_submit_to(struct conn *c, struct worker_pool *pool, worker_job_fn *job,
                          worker_done_fn *done, void *arg)
{
	struct conn_job *cj = malloc(sizeof(*cj));
	if (cj == NULL)
		return -1;
	cj->c = c;
	cj->job = job;
	cj->done = done;
	cj->arg = arg;
	/* the completion comes back to this connection's loop (its inbox) */
	if (worker_pool_submit(pool, c->loop->inbox, conn_job_run, conn_job_done, cj) < 0) {
		free(cj);
		return -1;
	}
	c->jobs++;
	return 1;
}

int conn_submit(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg)
{
	return conn_submit_to(c, c->srv->pool, job, done, arg);
}

int conn_submit_auth(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg)
{
	return conn_submit_to(c, c->srv->auth_pool, job, done, arg);
}

/* The conn_submit_batched jobs of one pass of a loop, in submission order; one
 * pool job (post) runs them all, and its completion runs all their completions. */
struct server_batch {
	struct conn_job *head, **tail;
	struct worker_post *post;
};

static void server_batch_run(void *ctx)
{
	struct server_batch *b = ctx;
	for (struct conn_job *cj = b->head; cj != NULL; cj = cj->next)
		cj->job(cj->arg);
}

static void server_batch_done(void *ctx)
{
	struct server_batch *b = ctx;
	struct conn_job *cj = b->head;
	free(b); /* the post is freed by the inbox */
	while (cj != NULL) {
		struct conn_job *next = cj->next;
		conn_job_done(cj);
		cj = next;
	}
}

/* Hands the loop's batch to the pool. On the loop's thread, or on the main thread
 * after the loop's thread has ended. */
static void loop_flush_batch(struct loop *loop)
{
	struct server_batch *b = loop->batch;
	if (b == NULL)
		return;
	loop->batch = NULL;
	worker_pool_submit_post(loop->srv->pool, loop->inbox, server_batch_run, b->post);
}

/* ev_batch: activated by the first conn_submit_batched of a pass, so it runs
 * after the callbacks already active in that pass. */
static void loop_on_batch(evutil_socket_t fd, short what, void *ctx)
{
	loop_flush_batch(ctx);
}

int conn_submit_batched(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg)
{
	struct loop *loop = c->loop;
	struct conn_job *cj = malloc(sizeof(*cj));
	if (cj == NULL)
		return -1;
	struct server_batch *b = loop->batch;
	if (b == NULL) {
		/* everything the batch needs is allocated now: its submission later
		 * cannot fail */
		b = calloc(1, sizeof(*b));
		if (b != NULL)
			b->post = worker_post_new(server_batch_done, b);
		if (b == NULL || b->post == NULL) {
			free(b);
			free(cj);
			return -1;
		}
		b->tail = &b->head;
		loop->batch = b;
		event_active(loop->ev_batch, EV_TIMEOUT, 0);
	}
	cj->next = NULL;
	cj->c = c;
	cj->job = job;
	cj->done = done;
	cj->arg = arg;
	*b->tail = cj;
	b->tail = &cj->next;
	c->jobs++;
	return 1;
}

int conn_submit_detached(struct conn *c, worker_job_fn *job, void *arg)
{
	return worker_pool_submit(c->srv->pool, NULL, job, NULL, arg);
}

void conn_hold(struct conn *c)
{
	c->jobs++;
}

void conn_release(struct conn *c)
{
	c->jobs--;
	conn_reap_if_done(c);
}

int conn_start_tls(struct conn *c)
{
	struct loop *loop = c->loop;
	if (loop->tls == NULL || c->ssl != NULL || c->zf != NULL || c->bev == NULL || c->dead)
		return -1;
	SSL *ssl = tls_server_ssl_new(loop->tls);
	if (ssl == NULL)
		return -1;
	struct bufferevent *plain = c->bev;
	/* Without BEV_OPT_CLOSE_ON_FREE: when the constructor fails, what it has
	 * freed of its arguments depends on where it failed; this way it frees
	 * neither, and the socket bufferevent (still c->bev, with the session's
	 * callbacks) is closed by conn_close like any other. On success conn_close
	 * frees the filter, then the socket bufferevent and the SSL. */
	struct bufferevent *tb =
		bufferevent_openssl_filter_new(loop->base, plain, ssl, BUFFEREVENT_SSL_ACCEPTING, 0);
	if (tb == NULL) {
		SSL_free(ssl);
		return -1;
	}
	/* the filter's timeouts rule from now on; the socket under it keeps none */
	bufferevent_set_timeouts(plain, NULL, NULL);
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	c->bev = tb;
	c->under = plain;
	c->ssl = ssl;
	c->tls = tls_server_ref(loop->tls);
	return 1;
}

int conn_start_compress(struct conn *c)
{
	if (c->zf != NULL || c->bev == NULL || c->dead)
		return -1;
	struct zfilter *zf = zfilter_new(c->loop->base, c->bev);
	if (zf == NULL)
		return -1;
	c->bev = zfilter_bev(zf);
	c->zf = zf;
	return 1;
}

void conn_log_event(struct conn *c, short what, const char *state)
{
	if (what & BEV_EVENT_CONNECTED) {
		char desc[128];
		log_info(c->sid, "event=tls %s",
		         c->ssl != NULL ? tls_describe(c->ssl, desc, sizeof(desc)) : "?");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e =
		    c->ssl != NULL && c->bev != NULL ? bufferevent_get_openssl_error(c->bev) : 0;
		char err[256] = "";
		if (e != 0)
			ERR_error_string_n(e, err, sizeof(err));
		log_info(c->sid, "event=connection-error state=%s%s%s%s", state,
		         err[0] ? " tls_error=\"" : "", err, err[0] ? "\"" : "");
	}
}

bool conn_is_loopback(const struct conn *c)
{
	if (c->peer.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->peer;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (c->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&c->peer;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

int64_t server_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a new connection, on the loop that was given it ---- */

static void loop_start_conn(struct loop *loop, struct server_handoff *h)
{
	struct server *srv = loop->srv;
	struct server_listener *l = h->l;
	evutil_socket_t fd = h->fd;
	struct conn *c = loop->stopping ? NULL : calloc(1, sizeof(*c));
	if (c == NULL) {
		if (!loop->stopping)
			log_error(NULL, "event=refuse reason=out-of-memory ip=%s", h->ip);
		evutil_closesocket(fd);
		server_count_out(srv, l, h->ip);
		atomic_fetch_sub(&loop->nconns, 1);
		return;
	}
	c->srv = srv;
	c->loop = loop;
	c->auth = srv->auth;
	c->proto = l->proto;
	c->listener = l;
	snprintf(c->ip, sizeof(c->ip), "%s", h->ip);
	memcpy(&c->peer, &h->peer,
	       (size_t)h->peerlen < sizeof(c->peer) ? (size_t)h->peerlen : sizeof(c->peer));
	socklen_t ll = sizeof(c->local);
	getsockname(fd, (struct sockaddr *)&c->local, &ll);
	server_sid_next(c->sid);
	c->next = loop->conns;
	if (loop->conns != NULL)
		loop->conns->prev = c;
	loop->conns = c;
	bool fd_owned = false; /* a failed constructor with CLOSE_ON_FREE closed it */
	if (l->proto->implicit_tls) {
		SSL *ssl = loop->tls != NULL ? tls_server_ssl_new(loop->tls) : NULL;
		if (ssl != NULL) {
			c->bev = bufferevent_openssl_socket_new(
			    loop->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
			fd_owned = true; /* on failure libevent freed ssl and closed fd */
		}
		if (c->bev != NULL) {
			c->ssl = ssl;
			c->tls = tls_server_ref(loop->tls);
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		}
	} else {
		c->bev = bufferevent_socket_new(loop->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL) {
		if (!fd_owned)
			evutil_closesocket(fd);
		conn_close(c);
		return;
	}
	log_info(c->sid, "event=connect proto=%s ip=%s loop=%u", l->proto->name, c->ip, loop->idx);
	if (c->proto->start(c) < 0)
		conn_close(c);
}

/* ---- loop lifecycle ---- */

void server_check_stopped(struct loop *loop)
{
	if (loop->stopping && loop->conns == NULL && loop->reap == NULL)
		event_base_loopexit(loop->base, NULL);
}

static void loop_on_shutdown_timeout(evutil_socket_t fd, short what, void *ctx)
{
	struct loop *loop = ctx;
	log_warn(NULL, "event=shutdown-timeout loop=%u sessions=%u", loop->idx,
	         atomic_load(&loop->nconns));
	while (loop->conns != NULL)
		conn_close(loop->conns);
	server_check_stopped(loop);
}

static void loop_stop(struct loop *loop)
{
	if (loop->stopping)
		return;
	loop->stopping = true;
	struct timeval tv = {.tv_sec = loop->cfg->shutdown_timeout};
	event_add(loop->ev_shutdown, &tv);
	struct conn *c = loop->conns;
	while (c != NULL) {
		struct conn *next = c->next;
		c->proto->shutdown(c);
		c = next;
	}
	server_check_stopped(loop);
}

/* Takes up the newest configuration and certificates (after a reload). Sessions
 * that started earlier copied what they use; their TLS holds its own reference. */
static void loop_take_gen(struct loop *loop)
{
	struct server *srv = loop->srv;
	pthread_mutex_lock(&srv->gen_lock);
	struct server_gen *g = server_gen_ref(srv->gen);
	pthread_mutex_unlock(&srv->gen_lock);
	server_gen_unref(&loop->gen);
	loop->gen = g;
	loop->cfg = g->cfg;
	loop->tls = g->tls;
}

static void loop_on_wake(evutil_socket_t fd, short what, void *ctx)
{
	struct loop *loop = ctx;
	uint64_t n;
	ssize_t r = read(loop->wake_fd, &n, sizeof(n));
	(void)r;
	if (atomic_exchange(&loop->want_reload, false))
		loop_take_gen(loop);
	pthread_mutex_lock(&loop->lock);
	struct server_handoff *h = loop->handoff;
	loop->handoff = NULL;
	pthread_mutex_unlock(&loop->lock);
	/* the list is newest first; start the oldest first */
	struct server_handoff *rev = NULL;
	while (h != NULL) {
		struct server_handoff *next = h->next;
		h->next = rev;
		rev = h;
		h = next;
	}
	while (rev != NULL) {
		struct server_handoff *next = rev->next;
		loop_start_conn(loop, rev);
		free(rev);
		rev = next;
	}
	if (atomic_load(&loop->want_stop))
		loop_stop(loop);
}

static void loop_wake(struct loop *loop)
{
	uint64_t one = 1;
	ssize_t w = write(loop->wake_fd, &one, sizeof(one));
	(void)w; /* only fails on counter overflow, and then the loop is awake anyway */
}

static void *loop_thread_main(void *ctx)
{
	struct loop *loop = ctx;
	event_base_dispatch(loop->base);
	return NULL;
}

static int loop_init(struct server *srv, struct loop *loop, unsigned idx)
{
	loop->srv = srv;
	loop->idx = idx;
	loop->wake_fd = -1;
	pthread_mutex_init(&loop->lock, NULL);
	/* The change list folds the add/delete pairs of one loop iteration (a reply
	 * written at once, say) into nothing, saving epoll_ctl calls. */
	struct event_config *ecfg = event_config_new();
	if (ecfg == NULL)
		return -1;
	event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	loop->base = event_base_new_with_config(ecfg);
	event_config_free(ecfg);
	if (loop->base == NULL)
		return -1;
	loop_take_gen(loop);
	loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->wake_fd < 0)
		return -1;
	loop->inbox = worker_inbox_new(loop->base);
	loop->ev_reap = event_new(loop->base, -1, 0, loop_on_reap, loop);
	loop->ev_batch = event_new(loop->base, -1, 0, loop_on_batch, loop);
	loop->ev_wake =
	    event_new(loop->base, loop->wake_fd, EV_READ | EV_PERSIST, loop_on_wake, loop);
	loop->ev_shutdown = evtimer_new(loop->base, loop_on_shutdown_timeout, loop);
	if (loop->inbox == NULL || loop->ev_reap == NULL || loop->ev_batch == NULL ||
	    loop->ev_wake == NULL ||
	    loop->ev_shutdown == NULL || event_add(loop->ev_wake, NULL) < 0)
		return -1;
	return 1;
}

/* After the loop's thread has ended (or never started). */
static void loop_cleanup(struct loop *loop)
{
	while (loop->conns != NULL)
		conn_close(loop->conns);
	/* completions of jobs that ended after the loop stopped, then the last reap */
	if (loop->inbox != NULL)
		worker_inbox_free(&loop->inbox);
	if (loop->ev_reap != NULL)
		loop_on_reap(-1, 0, loop);
	while (loop->handoff != NULL) {
		struct server_handoff *h = loop->handoff;
		loop->handoff = h->next;
		evutil_closesocket(h->fd);
		server_count_out(loop->srv, h->l, h->ip);
		free(h);
	}
	if (loop->ev_reap != NULL)
		event_free(loop->ev_reap);
	if (loop->ev_batch != NULL)
		event_free(loop->ev_batch);
	if (loop->ev_wake != NULL)
		event_free(loop->ev_wake);
	if (loop->ev_shutdown != NULL)
		event_free(loop->ev_shutdown);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	if (loop->base != NULL)
		event_base_free(loop->base);
	server_gen_unref(&loop->gen);
	pthread_mutex_destroy(&loop->lock);
}

/* ---- listeners and accept (main thread) ---- */

static void server_refuse(evutil_socket_t fd, const struct proto_ops *proto)
{
	if (proto->overload_reply != NULL) {
		ssize_t w = send(fd, proto->overload_reply, strlen(proto->overload_reply),
		                 MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)w; /* best effort: a full socket buffer just means no reply */
	}
	evutil_closesocket(fd);
}

/* Accept distribution: the main thread accepts on every listener and hands each
 * socket to the loop with the fewest connections (an eventfd wakes it). The
 * alternative, one SO_REUSEPORT socket per loop, spreads by a hash of the peer's
 * address and port, not by load; lets any process of the same user bind the port
 * too; loses the connections queued on a loop's socket when that loop closes it;
 * and needs every loop to back off separately at the descriptor limit. The
 * hand-off costs one mutex and at most one eventfd write per connection, small
 * next to a TLS handshake (docs/architecture.md has the measurements). */
static void server_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *addr,
                             int addrlen, void *ctx)
{
	struct server_listener *l = ctx;
	struct server *srv = l->srv;
	char ip[INET6_ADDRSTRLEN] = "?";

	l->pause_ms = 0; /* accepting again: the next shortage starts a fresh back-off */
	if (addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)addr)->sin_addr, ip, sizeof(ip));
	else if (addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)addr)->sin6_addr, ip, sizeof(ip));

	if (atomic_load(&srv->stopping)) {
		evutil_closesocket(fd);
		return;
	}
	enum server_admit adm = server_count_in(srv, l, ip);
	if (adm == SERVER_ADMIT_NOMEM || adm == SERVER_ADMIT_IP_TABLE_FULL) {
		log_error(NULL, "event=refuse reason=%s ip=%s",
		          adm == SERVER_ADMIT_NOMEM ? "out-of-memory" : "ip-table-full", ip);
		evutil_closesocket(fd);
		return;
	}
	if (adm != SERVER_ADMIT_OK) {
		static const char *const why[] = {
		    [SERVER_ADMIT_GLOBAL] = "connection-limit",
		    [SERVER_ADMIT_LISTENER] = "listener-limit",
		    [SERVER_ADMIT_IP] = "ip-limit",
		};
		log_warn(NULL, "event=refuse reason=%s proto=%s ip=%s conns=%u", why[adm],
		         l->proto->name, ip, server_count_total(srv));
		server_refuse(fd, l->proto);
		return;
	}
	struct server_handoff *h = calloc(1, sizeof(*h));
	if (h == NULL) {
		log_error(NULL, "event=refuse reason=out-of-memory ip=%s", ip);
		evutil_closesocket(fd);
		server_count_out(srv, l, ip);
		return;
	}
	h->fd = fd;
	h->l = l;
	h->peerlen = (socklen_t)addrlen < sizeof(h->peer) ? (socklen_t)addrlen : sizeof(h->peer);
	memcpy(&h->peer, addr, h->peerlen);
	snprintf(h->ip, sizeof(h->ip), "%s", ip);
	/* the least-loaded loop; ties go to the lowest index */
	struct loop *best = &srv->loops[0];
	unsigned best_n = atomic_load(&best->nconns);
	for (unsigned i = 1; i < srv->nloops; i++) {
		unsigned n = atomic_load(&srv->loops[i].nconns);
		if (n < best_n) {
			best = &srv->loops[i];
			best_n = n;
		}
	}
	/* counted now, so that the next accept before the loop wakes sees it; the
	 * loop subtracts it again when the connection ends */
	atomic_fetch_add(&best->nconns, 1);
	pthread_mutex_lock(&best->lock);
	bool was_empty = best->handoff == NULL;
	h->next = best->handoff;
	best->handoff = h;
	pthread_mutex_unlock(&best->lock);
	/* A non-empty list has a wake-up on its way already: the loop reads its
	 * eventfd before it takes the list, so it takes this socket too. */
	if (was_empty)
		loop_wake(best);
}

static void server_on_accept_resume(evutil_socket_t fd, short what, void *ctx)
{
	struct server_listener *l = ctx;
	if (!atomic_load(&l->srv->stopping))
		evconnlistener_enable(l->lev);
}

static void server_on_accept_error(struct evconnlistener *lev, void *ctx)
{
	struct server_listener *l = ctx;
	int err = EVUTIL_SOCKET_ERROR();
	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		/* a connection that went away before accept: nothing to wait for */
		log_warn(NULL, "event=accept-error proto=%s error=\"%s\"", l->proto->name,
		         evutil_socket_error_to_string(err));
		return;
	}
	/* Out of descriptors or memory: the listener stays readable, so retrying at
	 * once would spin. Pause it (one log line per pause) and let connections
	 * finish meanwhile; the peer waits in the listen queue. */
	l->pause_ms = l->pause_ms == 0 ? SERVER_ACCEPT_PAUSE_MIN_MS : l->pause_ms * 2;
	if (l->pause_ms > SERVER_ACCEPT_PAUSE_MAX_MS)
		l->pause_ms = SERVER_ACCEPT_PAUSE_MAX_MS;
	log_error(NULL, "event=accept-error proto=%s error=\"%s\" pause_ms=%u conns=%u",
	          l->proto->name, evutil_socket_error_to_string(err), l->pause_ms,
	          server_count_total(l->srv));
	evconnlistener_disable(lev);
	struct timeval tv = {.tv_sec = l->pause_ms / 1000, .tv_usec = (l->pause_ms % 1000) * 1000};
	evtimer_add(l->ev_resume, &tv);
}

static int server_listen(struct server *srv, const struct config_listen *cl,
                         const struct proto_ops *proto)
{
	const char *addr = cl->addr;
	char *host = NULL;
	unsigned port = 0;
	if (config_parse_hostport(addr, &host, &port) < 0) {
		fprintf(stderr, "hermod: bad listen address '%s'\n", addr);
		return -1;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t sslen;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sslen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*sin6);
	} else if (host[0] == '\0' || strcmp(host, "*") == 0) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*sin6);
	} else {
		fprintf(stderr, "hermod: listen address '%s' must be a numeric IP address\n", addr);
		free(host);
		return -1;
	}
	free(host);
	struct server_listener *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -1;
	l->srv = srv;
	l->proto = proto;
	l->max_conns = cl->max_connections;
	l->key = strdup(cl->key);
	l->addr = strdup(addr);
	l->ev_resume = evtimer_new(srv->base, server_on_accept_resume, l);
	l->lev = evconnlistener_new_bind(srv->base, server_on_accept, l,
	                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
	                                     LEV_OPT_CLOSE_ON_EXEC,
	                                 1024, (struct sockaddr *)&ss, (int)sslen);
	if (l->lev == NULL || l->addr == NULL || l->key == NULL || l->ev_resume == NULL) {
		fprintf(stderr, "hermod: cannot listen on %s: %s\n", addr, strerror(errno));
		if (l->lev != NULL)
			evconnlistener_free(l->lev);
		if (l->ev_resume != NULL)
			event_free(l->ev_resume);
		free(l->key);
		free(l->addr);
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->lev, server_on_accept_error);
	l->next = srv->listeners;
	srv->listeners = l;
	log_info(NULL, "event=listen proto=%s addr=%s max_connections=%u", proto->name, addr,
	         l->max_conns);
	return 1;
}

/* Stops accepting; the listener structs stay (connections point at them). */
static void server_close_listeners(struct server *srv)
{
	for (struct server_listener *l = srv->listeners; l != NULL; l = l->next) {
		if (l->lev != NULL)
			evconnlistener_free(l->lev);
		l->lev = NULL;
		if (l->ev_resume != NULL)
			event_free(l->ev_resume);
		l->ev_resume = NULL;
	}
}

static void server_free_listeners(struct server *srv)
{
	server_close_listeners(srv);
	while (srv->listeners != NULL) {
		struct server_listener *l = srv->listeners;
		srv->listeners = l->next;
		free(l->key);
		free(l->addr);
		free(l);
	}
}

/* ---- signals (main thread) ---- */

static void server_on_stop(evutil_socket_t sig, short what, void *ctx)
{
	struct server *srv = ctx;
	if (atomic_exchange(&srv->stopping, true))
		return;
	log_info(NULL, "event=stopping signal=%d sessions=%u", (int)sig, server_count_total(srv));
	server_close_listeners(srv);
	for (unsigned i = 0; i < srv->nloops; i++) {
		atomic_store(&srv->loops[i].want_stop, true);
		loop_wake(&srv->loops[i]);
	}
	/* server_main joins the loops once each has drained */
	event_base_loopexit(srv->base, NULL);
}

static void server_apply_log_level(const struct config *cfg)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++)
		if (strcmp(cfg->log_level, names[i]) == 0)
			log_set_level((enum log_level)i);
}

static void server_apply_throttle(struct server *srv, const struct config *cfg)
{
	struct throttle_limits lim = {
	    .max_failures = cfg->auth_max_failures,
	    .account_max_failures = cfg->auth_account_max_failures,
	    .window = cfg->auth_failure_window,
	    .lockout = cfg->auth_lockout,
	    .max_delay_ms = cfg->auth_max_delay * 1000,
	};
	if (srv->throttle == NULL)
		srv->throttle = throttle_new(&lim);
	else
		throttle_set_limits(srv->throttle, &lim);
}

/* Publishes a new generation; the loops take it up when woken. */
static void server_set_gen(struct server *srv, struct config *cfg, struct tls_server *tls)
{
	struct server_gen *g = calloc(1, sizeof(*g));
	if (g == NULL) {
		config_free(&cfg);
		tls_server_unref(&tls);
		return;
	}
	atomic_init(&g->refs, 1);
	g->cfg = cfg;
	g->tls = tls;
	pthread_mutex_lock(&srv->gen_lock);
	struct server_gen *old = srv->gen;
	srv->gen = g;
	pthread_mutex_unlock(&srv->gen_lock);
	server_gen_unref(&old);
	srv->cfg = cfg;
	for (unsigned i = 0; i < srv->nloops; i++) {
		atomic_store(&srv->loops[i].want_reload, true);
		loop_wake(&srv->loops[i]);
	}
}

/* SIGHUP: runs on the main thread, never on a loop (reading files and loading
 * keys may take a while). The loops switch to the result between callbacks. */
static void server_on_reload(evutil_socket_t sig, short what, void *ctx)
{
	struct server *srv = ctx;
	struct config *cfg = NULL;
	char *err = NULL;
	char esc[600];
	if (config_load(srv->cfg->path, &cfg, &err) < 0 ||
	    (srv->app->check != NULL && srv->app->check(cfg, &err) < 0)) {
		log_error(NULL, "event=reload-failed error=\"%s\"",
		          log_escape_str(err, esc, sizeof(esc)));
		free(err);
		config_free(&cfg);
		return;
	}
	/* Certificates: a bad new one keeps the old one (and the old config). */
	struct tls_server *tls = NULL;
	if (tls_server_new(cfg, &tls, &err) < 0) {
		log_error(NULL, "event=reload-failed error=\"%s\"",
		          log_escape_str(err, esc, sizeof(esc)));
		free(err);
		config_free(&cfg);
		return;
	}
	if (tls == NULL && srv->gen->tls != NULL) {
		log_warn(NULL, "event=reload-tls-kept reason=\"no [tls] cert in the new config\"");
		tls = tls_server_ref(srv->gen->tls);
	}
	server_apply_throttle(srv, cfg);
	if (srv->app->apply != NULL)
		srv->app->apply(cfg);
	/* Listeners, their limits, threads and data_dir stay as they were: changing
	 * them needs a restart. */
	server_apply_log_level(cfg);
	server_set_gen(srv, cfg, tls);
	log_info(NULL, "event=reloaded config=%s", cfg->path);
}

/* ---- start-up ---- */

static int server_drop_privileges(const struct config *cfg)
{
	if (cfg->user == NULL) {
		if (geteuid() == 0)
			log_warn(NULL, "event=running-as-root hint=\"set [server] user\"");
		return 1;
	}
	struct passwd *pw = getpwnam(cfg->user);
	if (pw == NULL) {
		fprintf(stderr, "hermod: %s: unknown user '%s' in [server] user\n", cfg->path,
		        cfg->user);
		return -1;
	}
	if (geteuid() != 0) {
		if (geteuid() != pw->pw_uid) {
			fprintf(stderr, "hermod: cannot switch to user '%s': not started as root\n",
			        cfg->user);
			return -1;
		}
		return 1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		fprintf(stderr, "hermod: cannot switch to user '%s': %s\n", cfg->user,
		        strerror(errno));
		return -1;
	}
	log_info(NULL, "event=privileges-dropped user=%s", cfg->user);
	return 1;
}

/* RLIMIT_NOFILE: one descriptor per connection plus SERVER_FD_MARGIN and a few per
 * store worker and loop. The soft limit is raised to that when it is lower;
 * when even the hard limit is lower, hermod refuses to start rather than fail
 * accepts under load. */
static int server_raise_nofile(const struct config *cfg, unsigned nloops, unsigned nauth)
{
	uint64_t need = (uint64_t)cfg->max_connections + SERVER_FD_MARGIN + cfg->nlisten +
	                4ull * cfg->store_workers + 2ull * nauth + 4ull * nloops;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1; /* cannot tell: carry on */
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
		return 1;
	if (rl.rlim_cur == RLIM_INFINITY)
		return 1;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		fprintf(stderr,
		        "hermod: %s: [limits] max_connections = %u needs %llu file descriptors, "
		        "but the hard limit is %llu (raise it, e.g. LimitNOFILE=%llu, or lower "
		        "max_connections)\n",
		        cfg->path, cfg->max_connections, (unsigned long long)need,
		        (unsigned long long)rl.rlim_max, (unsigned long long)need);
		return -1;
	}
	rlim_t old = rl.rlim_cur;
	rl.rlim_cur = (rlim_t)need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		fprintf(stderr, "hermod: cannot raise the file descriptor limit to %llu: %s\n",
		        (unsigned long long)need, strerror(errno));
		return -1;
	}
	log_info(NULL, "event=nofile-raised from=%llu to=%llu", (unsigned long long)old,
	         (unsigned long long)need);
	return 1;
}

static unsigned server_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 && n < SERVER_MAX_LOOPS ? (unsigned)n : (n > 0 ? SERVER_MAX_LOOPS : 1);
}

int server_main(const char *config_path, const struct server_app *app)
{
	struct server srv;
	struct auth_ctx auth;
	struct config *cfg = NULL;
	struct tls_server *tls = NULL;
	char *err = NULL;
	int status = 1;
	bool services = false;
	sigset_t sigs, oldsigs;

	memset(&srv, 0, sizeof(srv));
	memset(&auth, 0, sizeof(auth));
	srv.app = app;
	pthread_mutex_init(&srv.gen_lock, NULL);
	pthread_mutex_init(&srv.count_lock, NULL);
	if (config_load(config_path, &cfg, &err) < 0 ||
	    (app->check != NULL && app->check(cfg, &err) < 0)) {
		fprintf(stderr, "hermod: %s\n", err != NULL ? err : "cannot load config");
		free(err);
		config_free(&cfg);
		return 1;
	}
	server_apply_log_level(cfg);
	signal(SIGPIPE, SIG_IGN);
	server_sid_next((char[20]){0}); /* picks the node id now, not on the first accept */
	srv.ip_counts = dict_new(sizeof(unsigned), cfg->max_connections > 0 ? cfg->max_connections : 1,
	                         DICT_NO_EVICT);
	srv.base = event_base_new();
	if (srv.base == NULL || srv.ip_counts == NULL) {
		fprintf(stderr, "hermod: cannot create event loop\n");
		config_free(&cfg);
		goto out;
	}
	if (tls_server_new(cfg, &tls, &err) < 0) {
		fprintf(stderr, "hermod: %s: %s\n", cfg->path,
		        err != NULL ? err : "TLS set-up failed");
		free(err);
		config_free(&cfg);
		goto out;
	}
	unsigned ncpu = server_ncpu();
	unsigned nloops = cfg->threads != 0 ? cfg->threads : ncpu;
	srv.nloops = 0;
	server_set_gen(&srv, cfg, tls); /* srv.cfg = cfg from here on */
	if (server_raise_nofile(srv.cfg, nloops, ncpu) < 0)
		goto out;
	server_apply_throttle(&srv, srv.cfg);
	if (app->apply != NULL)
		app->apply(srv.cfg);
	srv.ratelimit = ratelimit_new();
	if (srv.throttle == NULL || srv.ratelimit == NULL) {
		fprintf(stderr, "hermod: out of memory\n");
		goto out;
	}
	for (unsigned i = 0; i < srv.cfg->nlisten; i++) {
		const struct proto_ops *proto = app->proto_for(srv.cfg->listen[i].key);
		if (proto == NULL) /* app->check has said so already */
			goto out;
		if (server_listen(&srv, &srv.cfg->listen[i], proto) < 0)
			goto out;
	}
	if (srv.listeners == NULL) {
		fprintf(stderr, "hermod: %s: no listener configured in [listen]\n", srv.cfg->path);
		goto out;
	}
	if (server_drop_privileges(srv.cfg) < 0)
		goto out;

	struct store_options sopts = {.data_dir = srv.cfg->data_dir,
				      .fsync = srv.cfg->store_fsync,
				      .hostname = srv.cfg->hostname,
				      .backend = srv.cfg->store_backend,
				      .sweep_interval = STORE_SWEEP_INTERVAL};
	if (store_open(&sopts, &srv.store, &err) < 0) {
		fprintf(stderr, "hermod: cannot open store in %s: %s\n", srv.cfg->data_dir,
		        err != NULL ? err : "?");
		free(err);
		goto out;
	}
	auth.throttle = srv.throttle;
	auth.store = srv.store;
	auth.submit = conn_submit_auth;
	auth.now_ms = server_now_ms;
	srv.auth = &auth;

	/* Signals go to the main thread only: every other thread starts with them
	 * blocked. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, &oldsigs);
	srv.pool = worker_pool_create(srv.cfg->store_workers, 0);
	/* Password hashes (yescrypt: CPU and 16 MiB each) get their own pool with a
	 * thread per core: more would only queue for the CPUs, hold memory, and
	 * starve the event loops and the store workers. */
	srv.auth_pool = worker_pool_create(ncpu, 10);
	srv.loops = calloc(nloops, sizeof(*srv.loops));
	bool loops_ok = srv.loops != NULL;
	for (unsigned i = 0; loops_ok && i < nloops; i++) {
		srv.nloops++;
		if (loop_init(&srv, &srv.loops[i], i) < 0 ||
		    pthread_create(&srv.loops[i].thread, NULL, loop_thread_main, &srv.loops[i]) !=
		        0)
			loops_ok = false;
		else
			srv.loops[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &oldsigs, NULL);
	if (srv.pool == NULL || srv.auth_pool == NULL || !loops_ok) {
		fprintf(stderr, "hermod: cannot start threads\n");
		goto out;
	}
	srv.ev_sigterm = evsignal_new(srv.base, SIGTERM, server_on_stop, &srv);
	srv.ev_sigint = evsignal_new(srv.base, SIGINT, server_on_stop, &srv);
	srv.ev_sighup = evsignal_new(srv.base, SIGHUP, server_on_reload, &srv);
	if (srv.ev_sigterm == NULL || srv.ev_sigint == NULL || srv.ev_sighup == NULL ||
	    event_add(srv.ev_sigterm, NULL) < 0 || event_add(srv.ev_sigint, NULL) < 0 ||
	    event_add(srv.ev_sighup, NULL) < 0) {
		fprintf(stderr, "hermod: cannot set up signal handling\n");
		goto out;
	}
	if (app->start != NULL) {
		struct server_services svc = {.cfg = srv.cfg, .store = srv.store, .pool = srv.pool};
		if (app->start(&svc, &err) < 0) {
			fprintf(stderr, "hermod: %s\n", err != NULL ? err : "cannot start services");
			free(err);
			goto out;
		}
		services = true;
	}
	log_info(NULL, "event=started version=%s hostname=%s data_dir=%s pid=%d threads=%u",
	         HERMOD_VERSION, srv.cfg->hostname, srv.cfg->data_dir, (int)getpid(), srv.nloops);
	event_base_dispatch(srv.base);
	status = 0;
out:
	/* stop and join the loops; each drains its sessions (shutdown_timeout) */
	atomic_store(&srv.stopping, true);
	server_close_listeners(&srv);
	for (unsigned i = 0; i < srv.nloops; i++) {
		if (!srv.loops[i].started)
			continue;
		atomic_store(&srv.loops[i].want_stop, true);
		loop_wake(&srv.loops[i]);
		pthread_join(srv.loops[i].thread, NULL);
		/* a batch the loop did not get to submit (its callbacks ran, the
		 * flush did not): the pool runs it, its completions wait in the inbox */
		if (srv.pool != NULL)
			loop_flush_batch(&srv.loops[i]);
	}
	if (services && app->stop != NULL)
		app->stop();
	if (status == 0)
		log_info(NULL, "event=stopped");
	if (srv.pool != NULL)
		worker_pool_destroy(&srv.pool); /* completions stay in the loops' inboxes */
	if (services && app->cleanup != NULL)
		app->cleanup();
	if (srv.auth_pool != NULL)
		worker_pool_destroy(&srv.auth_pool);
	/* the committer finishes what the workers queued; its completions go to
	 * the loops' inboxes, which loop_cleanup runs */
	store_close(&srv.store);
	for (unsigned i = 0; i < srv.nloops; i++)
		loop_cleanup(&srv.loops[i]);
	free(srv.loops);
	server_free_listeners(&srv);
	throttle_free(&srv.throttle);
	ratelimit_free(&srv.ratelimit);
	if (srv.ev_sigterm != NULL)
		event_free(srv.ev_sigterm);
	if (srv.ev_sigint != NULL)
		event_free(srv.ev_sigint);
	if (srv.ev_sighup != NULL)
		event_free(srv.ev_sighup);
	if (srv.base != NULL)
		event_base_free(srv.base);
	dict_free(&srv.ip_counts);
	server_gen_unref(&srv.gen);
	pthread_mutex_destroy(&srv.gen_lock);
	pthread_mutex_destroy(&srv.count_lock);
	return status;
}
