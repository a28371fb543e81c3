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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/version.h"
#include "auth/ratelimit.h"
#include "auth/throttle.h"
#include "net/tls.h"
#include "pop3/pop3_session.h"
#include "smtp/smtp_session.h"
#include "store/store.h"

#define SERVER_IP_BUCKETS 1024

struct server_listener {
	struct server_listener *next;
	struct server *srv;
	const struct proto_ops *proto;
	struct evconnlistener *lev;
	char *addr;
};

struct server_ip_count {
	struct server_ip_count *next;
	unsigned count;
	char ip[INET6_ADDRSTRLEN];
};

/* ---- per-IP connection counts ---- */

static unsigned server_ip_hash(const char *ip)
{
	unsigned h = 2166136261u;
	for (; *ip != '\0'; ip++)
		h = (h ^ (unsigned char)*ip) * 16777619u;
	return h % SERVER_IP_BUCKETS;
}

static struct server_ip_count **server_ip_find(struct server *srv, const char *ip)
{
	struct server_ip_count **p = &srv->ip_counts[server_ip_hash(ip)];
	while (*p != NULL && strcmp((*p)->ip, ip) != 0)
		p = &(*p)->next;
	return p;
}

static unsigned server_ip_get(struct server *srv, const char *ip)
{
	struct server_ip_count **p = server_ip_find(srv, ip);
	return *p != NULL ? (*p)->count : 0;
}

static int server_ip_inc(struct server *srv, const char *ip)
{
	struct server_ip_count **p = server_ip_find(srv, ip);
	if (*p == NULL) {
		struct server_ip_count *e = calloc(1, sizeof(*e));
		if (e == NULL)
			return -1;
		snprintf(e->ip, sizeof(e->ip), "%s", ip);
		*p = e;
	}
	(*p)->count++;
	return 1;
}

static void server_ip_dec(struct server *srv, const char *ip)
{
	struct server_ip_count **p = server_ip_find(srv, ip);
	if (*p == NULL)
		return;
	if (--(*p)->count == 0) {
		struct server_ip_count *e = *p;
		*p = e->next;
		free(e);
	}
}

/* ---- connections ---- */

/* A closed connection with no job pending is freed at the next safe point of
 * the loop. Queued once, however many paths get here. */
static void conn_reap_if_done(struct conn *c)
{
	if (!c->dead || c->jobs > 0 || c->reap_queued)
		return;
	c->reap_queued = true;
	c->next = c->srv->reap;
	c->srv->reap = c;
	event_active(c->srv->ev_reap, EV_TIMEOUT, 0);
}

bool conn_is_dead(const struct conn *c)
{
	return c->dead;
}

static void conn_free(struct conn *c)
{
	struct server *srv = c->srv;
	if (c->proto != NULL && c->proto->free != NULL)
		c->proto->free(c);
	tls_server_unref(&c->tls);
	if (c->ev_close != NULL)
		event_free(c->ev_close);
	free(c);
	server_check_stopped(srv);
}

static void server_on_reap(evutil_socket_t fd, short what, void *ctx)
{
	struct server *srv = ctx;
	struct conn *c = srv->reap;
	srv->reap = NULL;
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
	struct server *srv = c->srv;
	c->dead = true;
	if (c->bev != NULL && c->ssl != NULL && c->closing) {
		/* A goodbye: send TLS close_notify (clients such as openssl s_client
		 * treat a bare TCP close as truncation). Best effort, never waits. */
		SSL_shutdown(c->ssl);
		struct bufferevent *under = bufferevent_get_underlying(c->bev);
		if (under != NULL) {
			/* a bufferevent freezes the front of its output; it is going away,
			 * so write the close_notify record out directly */
			struct evbuffer *out = bufferevent_get_output(under);
			evbuffer_unfreeze(out, 1);
			evbuffer_write(out, bufferevent_getfd(under));
		}
	}
	if (c->bev != NULL) {
		struct bufferevent *under = bufferevent_get_underlying(c->bev);
		if (c->under_cb != NULL && under != NULL)
			evbuffer_remove_cb_entry(bufferevent_get_output(under), c->under_cb);
		c->under_cb = NULL;
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	server_ip_dec(srv, c->ip);
	srv->nconns--;
	/* unlink from the live list */
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	log_info(c->sid, "event=disconnect");
	conn_reap_if_done(c);
}

/* Output still to be written: with TLS, also the encrypted bytes waiting in the
 * socket bufferevent under the TLS filter. */
static size_t conn_output_pending(struct conn *c)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(c->bev));
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
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
	if (conn_output_pending(c) == 0) {
		conn_close(c);
		return;
	}
	bufferevent_setcb(c->bev, NULL, conn_on_flushed, conn_on_flush_event, c);
	bufferevent_enable(c->bev, EV_WRITE);
	struct bufferevent *under = bufferevent_get_underlying(c->bev);
	if (under != NULL) {
		c->ev_close = event_new(c->srv->base, -1, 0, conn_on_close_event, c);
		if (c->ev_close != NULL)
			c->under_cb = evbuffer_add_cb(bufferevent_get_output(under),
						      conn_on_under_drained, c);
	}
}

static int conn_submit_to(struct conn *c, struct worker_pool *pool, worker_job_fn *job,
			  worker_done_fn *done, void *arg);

struct conn_job {
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

int conn_submit(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg)
{
	return conn_submit_to(c, c->srv->pool, job, done, arg);
}

int conn_submit_auth(struct conn *c, worker_job_fn *job, worker_done_fn *done, void *arg)
{
	return conn_submit_to(c, c->srv->auth_pool, job, done, arg);
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
	if (worker_pool_submit(pool, conn_job_run, conn_job_done, cj) < 0) {
		free(cj);
		return -1;
	}
	c->jobs++;
	return 1;
}

int conn_start_tls(struct conn *c)
{
	struct server *srv = c->srv;
	if (srv->tls == NULL || c->ssl != NULL)
		return -1;
	SSL *ssl = tls_server_ssl_new(srv->tls);
	if (ssl == NULL)
		return -1;
	struct bufferevent *plain = c->bev;
	/* the filter's timeouts rule from now on; the socket under it keeps none */
	bufferevent_set_timeouts(plain, NULL, NULL);
	struct bufferevent *tb = bufferevent_openssl_filter_new(
		srv->base, plain, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		/* libevent has freed what it was given (CLOSE_ON_FREE): ssl and the
		 * socket bufferevent are gone with it */
		c->bev = NULL;
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	c->bev = tb; /* frees the plain one with it */
	c->ssl = ssl;
	c->tls = tls_server_ref(srv->tls);
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
		unsigned long e = c->ssl != NULL && c->bev != NULL ?
					  bufferevent_get_openssl_error(c->bev) :
					  0;
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

/* ---- listeners ---- */

static void server_refuse(evutil_socket_t fd, const struct proto_ops *proto)
{
	if (proto->overload_reply != NULL) {
		ssize_t w = send(fd, proto->overload_reply, strlen(proto->overload_reply),
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)w; /* best effort: a full socket buffer just means no reply */
	}
	evutil_closesocket(fd);
}

static void server_on_accept(struct evconnlistener *lev, evutil_socket_t fd,
			     struct sockaddr *addr, int addrlen, void *ctx)
{
	struct server_listener *l = ctx;
	struct server *srv = l->srv;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)addr)->sin_addr, ip, sizeof(ip));
	else if (addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)addr)->sin6_addr, ip, sizeof(ip));

	if (srv->stopping) {
		evutil_closesocket(fd);
		return;
	}
	if (srv->nconns >= srv->cfg->max_connections ||
	    server_ip_get(srv, ip) >= srv->cfg->max_connections_per_ip) {
		log_warn(NULL, "event=refuse reason=connection-limit proto=%s ip=%s conns=%u",
			 l->proto->name, ip, srv->nconns);
		server_refuse(fd, l->proto);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL || server_ip_inc(srv, ip) < 0) {
		free(c);
		log_error(NULL, "event=refuse reason=out-of-memory ip=%s", ip);
		evutil_closesocket(fd);
		return;
	}
	c->srv = srv;
	c->proto = l->proto;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	memcpy(&c->peer, addr, (size_t)addrlen < sizeof(c->peer) ? (size_t)addrlen : sizeof(c->peer));
	socklen_t ll = sizeof(c->local);
	getsockname(fd, (struct sockaddr *)&c->local, &ll);
	snprintf(c->sid, sizeof(c->sid), "%08lx", srv->next_sid++);
	srv->nconns++;
	c->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = c;
	srv->conns = c;
	bool fd_owned = false; /* a failed constructor with CLOSE_ON_FREE closed it */
	if (l->proto->implicit_tls) {
		SSL *ssl = srv->tls != NULL ? tls_server_ssl_new(srv->tls) : NULL;
		if (ssl != NULL) {
			c->bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
								BUFFEREVENT_SSL_ACCEPTING,
								BEV_OPT_CLOSE_ON_FREE);
			fd_owned = true; /* on failure libevent freed ssl and closed fd */
		}
		if (c->bev != NULL) {
			c->ssl = ssl;
			c->tls = tls_server_ref(srv->tls);
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		}
	} else {
		c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (c->bev == NULL) {
		if (!fd_owned)
			evutil_closesocket(fd);
		conn_close(c);
		return;
	}
	log_info(c->sid, "event=connect proto=%s ip=%s", l->proto->name, ip);
	if (c->proto->start(c) < 0)
		conn_close(c);
}

static void server_on_accept_error(struct evconnlistener *lev, void *ctx)
{
	int err = EVUTIL_SOCKET_ERROR();
	log_error(NULL, "event=accept-error error=\"%s\"", evutil_socket_error_to_string(err));
	/* EMFILE and friends: keep listening; the loop retries on the next event */
}

static int server_listen(struct server *srv, const char *addr, const struct proto_ops *proto)
{
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
	l->addr = strdup(addr);
	l->lev = evconnlistener_new_bind(srv->base, server_on_accept, l,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						 LEV_OPT_CLOSE_ON_EXEC,
					 1024, (struct sockaddr *)&ss, (int)sslen);
	if (l->lev == NULL || l->addr == NULL) {
		fprintf(stderr, "hermod: cannot listen on %s: %s\n", addr, strerror(errno));
		free(l->addr);
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->lev, server_on_accept_error);
	l->next = srv->listeners;
	srv->listeners = l;
	log_info(NULL, "event=listen proto=%s addr=%s", proto->name, addr);
	return 1;
}

static void server_close_listeners(struct server *srv)
{
	while (srv->listeners != NULL) {
		struct server_listener *l = srv->listeners;
		srv->listeners = l->next;
		evconnlistener_free(l->lev);
		free(l->addr);
		free(l);
	}
}

/* ---- lifecycle ---- */

void server_check_stopped(struct server *srv)
{
	if (srv->stopping && srv->conns == NULL && srv->reap == NULL)
		event_base_loopexit(srv->base, NULL);
}

static void server_on_shutdown_timeout(evutil_socket_t fd, short what, void *ctx)
{
	struct server *srv = ctx;
	log_warn(NULL, "event=shutdown-timeout sessions=%u", srv->nconns);
	while (srv->conns != NULL)
		conn_close(srv->conns);
	server_check_stopped(srv);
}

static void server_on_stop(evutil_socket_t sig, short what, void *ctx)
{
	struct server *srv = ctx;
	if (srv->stopping)
		return;
	log_info(NULL, "event=stopping signal=%d sessions=%u", (int)sig, srv->nconns);
	srv->stopping = true;
	server_close_listeners(srv);
	struct timeval tv = {.tv_sec = srv->cfg->shutdown_timeout};
	event_add(srv->ev_shutdown, &tv);
	struct conn *c = srv->conns;
	while (c != NULL) {
		struct conn *next = c->next;
		c->proto->shutdown(c);
		c = next;
	}
	server_check_stopped(srv);
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

static void server_on_reload(evutil_socket_t sig, short what, void *ctx)
{
	struct server *srv = ctx;
	struct config *cfg = NULL;
	char *err = NULL;
	if (config_load(srv->cfg->path, &cfg, &err) < 0) {
		char esc[600];
		log_error(NULL, "event=reload-failed error=\"%s\"",
			  log_escape_str(err, esc, sizeof(esc)));
		free(err);
		return;
	}
	/* Certificates: a bad new one keeps the old one (and the old config). */
	struct tls_server *tls = NULL;
	if (tls_server_new(cfg, &tls, &err) < 0) {
		char esc[600];
		log_error(NULL, "event=reload-failed error=\"%s\"",
			  log_escape_str(err, esc, sizeof(esc)));
		free(err);
		config_free(&cfg);
		return;
	}
	if (tls == NULL && srv->tls != NULL)
		log_warn(NULL, "event=reload-tls-kept reason=\"no [tls] cert in the new config\"");
	else {
		tls_server_unref(&srv->tls); /* connections keep their own reference */
		srv->tls = tls;
	}
	server_apply_throttle(srv, cfg);
	/* Listeners and data_dir stay as they were: changing them needs a restart.
	 * Sessions copy what they use from the config when they start, so the old
	 * one can go now. */
	struct config *old = srv->cfg;
	srv->cfg = cfg;
	config_free(&old);
	server_apply_log_level(cfg);
	log_info(NULL, "event=reloaded config=%s", cfg->path);
}

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

int server_main(const char *config_path)
{
	struct server srv;
	char *err = NULL;
	int status = 1;

	memset(&srv, 0, sizeof(srv));
	if (config_load(config_path, &srv.cfg, &err) < 0) {
		fprintf(stderr, "hermod: %s\n", err != NULL ? err : "cannot load config");
		free(err);
		return 1;
	}
	server_apply_log_level(srv.cfg);
	signal(SIGPIPE, SIG_IGN);
	srv.next_sid = ((unsigned long)time(NULL) & 0xffffu) << 16;
	srv.ip_counts = calloc(SERVER_IP_BUCKETS, sizeof(*srv.ip_counts));
	/* The change list folds the add/delete pairs of one loop iteration (a reply
	 * written at once, say) into nothing, saving epoll_ctl calls. */
	struct event_config *ecfg = event_config_new();
	if (ecfg != NULL) {
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		srv.base = event_base_new_with_config(ecfg);
		event_config_free(ecfg);
	}
	if (srv.base == NULL || srv.ip_counts == NULL) {
		fprintf(stderr, "hermod: cannot create event loop\n");
		goto out;
	}
	if (tls_server_new(srv.cfg, &srv.tls, &err) < 0) {
		fprintf(stderr, "hermod: %s: %s\n", srv.cfg->path, err != NULL ? err : "TLS set-up failed");
		free(err);
		goto out;
	}
	server_apply_throttle(&srv, srv.cfg);
	srv.ratelimit = ratelimit_new();
	if (srv.throttle == NULL || srv.ratelimit == NULL) {
		fprintf(stderr, "hermod: out of memory\n");
		goto out;
	}
	if (srv.cfg->listen_smtp != NULL && server_listen(&srv, srv.cfg->listen_smtp, &smtp_proto) < 0)
		goto out;
	if (srv.cfg->listen_submission != NULL &&
	    server_listen(&srv, srv.cfg->listen_submission, &submission_proto) < 0)
		goto out;
	if (srv.cfg->listen_submissions != NULL &&
	    server_listen(&srv, srv.cfg->listen_submissions, &submissions_proto) < 0)
		goto out;
	if (srv.cfg->listen_pop3 != NULL && server_listen(&srv, srv.cfg->listen_pop3, &pop3_proto) < 0)
		goto out;
	if (srv.cfg->listen_pop3s != NULL &&
	    server_listen(&srv, srv.cfg->listen_pop3s, &pop3s_proto) < 0)
		goto out;
	if (srv.listeners == NULL) {
		fprintf(stderr, "hermod: %s: no listener configured in [listen]\n", srv.cfg->path);
		goto out;
	}
	if (server_drop_privileges(srv.cfg) < 0)
		goto out;

	struct store_options sopts = {.data_dir = srv.cfg->data_dir,
				      .fsync = srv.cfg->store_fsync,
				      .hostname = srv.cfg->hostname,
				      .backend = srv.cfg->store_backend};
	if (store_open(&sopts, &srv.store, &err) < 0) {
		fprintf(stderr, "hermod: cannot open store in %s: %s\n", srv.cfg->data_dir,
			err != NULL ? err : "?");
		free(err);
		goto out;
	}
	srv.pool = worker_pool_create(srv.base, srv.cfg->store_workers, 0);
	/* Password hashes (yescrypt: CPU and 16 MiB each) get their own pool with a
	 * thread per core: more would only queue for the CPUs, hold memory, and
	 * starve the event loop and the store workers. */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	srv.auth_pool =
		worker_pool_create(srv.base, ncpu > 0 && ncpu < 64 ? (unsigned)ncpu : 2, 10);
	if (srv.pool == NULL || srv.auth_pool == NULL) {
		fprintf(stderr, "hermod: cannot start worker threads\n");
		goto out;
	}
	srv.ev_sigterm = evsignal_new(srv.base, SIGTERM, server_on_stop, &srv);
	srv.ev_sigint = evsignal_new(srv.base, SIGINT, server_on_stop, &srv);
	srv.ev_sighup = evsignal_new(srv.base, SIGHUP, server_on_reload, &srv);
	srv.ev_shutdown = evtimer_new(srv.base, server_on_shutdown_timeout, &srv);
	srv.ev_reap = event_new(srv.base, -1, 0, server_on_reap, &srv);
	if (srv.ev_sigterm == NULL || srv.ev_sigint == NULL || srv.ev_sighup == NULL ||
	    srv.ev_shutdown == NULL || srv.ev_reap == NULL || event_add(srv.ev_sigterm, NULL) < 0 ||
	    event_add(srv.ev_sigint, NULL) < 0 || event_add(srv.ev_sighup, NULL) < 0) {
		fprintf(stderr, "hermod: cannot set up signal handling\n");
		goto out;
	}
	log_info(NULL, "event=started version=%s hostname=%s data_dir=%s pid=%d", HERMOD_VERSION,
		 srv.cfg->hostname, srv.cfg->data_dir, (int)getpid());
	event_base_dispatch(srv.base);
	status = 0;
	log_info(NULL, "event=stopped");
out:
	server_close_listeners(&srv);
	while (srv.conns != NULL)
		conn_close(srv.conns);
	if (srv.pool != NULL)
		worker_pool_destroy(&srv.pool); /* runs pending completions */
	if (srv.auth_pool != NULL)
		worker_pool_destroy(&srv.auth_pool);
	if (srv.ev_reap != NULL)
		server_on_reap(-1, 0, &srv);
	pop3_session_cleanup();
	store_close(&srv.store);
	tls_server_unref(&srv.tls);
	throttle_free(&srv.throttle);
	ratelimit_free(&srv.ratelimit);
	if (srv.ev_sigterm != NULL)
		event_free(srv.ev_sigterm);
	if (srv.ev_sigint != NULL)
		event_free(srv.ev_sigint);
	if (srv.ev_sighup != NULL)
		event_free(srv.ev_sighup);
	if (srv.ev_shutdown != NULL)
		event_free(srv.ev_shutdown);
	if (srv.ev_reap != NULL)
		event_free(srv.ev_reap);
	if (srv.base != NULL)
		event_base_free(srv.base);
	if (srv.ip_counts != NULL) {
		for (unsigned i = 0; i < SERVER_IP_BUCKETS; i++) {
			while (srv.ip_counts[i] != NULL) {
				struct server_ip_count *e = srv.ip_counts[i];
				srv.ip_counts[i] = e->next;
				free(e);
			}
		}
		free(srv.ip_counts);
	}
	config_free(&srv.cfg);
	return status;
}
