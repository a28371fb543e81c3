/* The SMTP client: one attempt, one connection (smtp_client.h). */
#include "smtp/smtp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/base64.h"
#include "core/buf.h"
#include "core/str.h"
#include "core/worker.h"
#include "dns/dns.h"
#include "net/tls.h"
#include "smtp/smtp_client_parse.h"
#include "store/store.h"

/* RFC 5321 4.5.3.2 minimum timeouts. */
#define CLIENT_CONNECT_TIMEOUT 30
#define CLIENT_COMMAND_TIMEOUT 300
#define CLIENT_DATA_INIT_TIMEOUT 120
#define CLIENT_DATA_BLOCK_TIMEOUT 180
#define CLIENT_DATA_END_TIMEOUT 600
/* A message is read from its blob in steps of this size (on a worker), and the
 * next step starts when the unsent output is below the low mark. */
#define CLIENT_READ_STEP (128u << 10)
#define CLIENT_OUTPUT_LOW (256u << 10)

enum client_state {
	CLIENT_CONNECTING,
	CLIENT_GREETING,
	CLIENT_EHLO,
	CLIENT_HELO,
	CLIENT_STARTTLS,
	CLIENT_HANDSHAKE,
	CLIENT_AUTH,      /* AUTH PLAIN, or AUTH LOGIN before the user name */
	CLIENT_AUTH_USER, /* AUTH LOGIN: the user name sent */
	CLIENT_AUTH_PASS, /* AUTH LOGIN: the password sent */
	CLIENT_TRANSACTION, /* MAIL, RCPTs, DATA: replies read in order */
	CLIENT_BODY,        /* sending the message */
	CLIENT_DOT,         /* waiting for the reply to the end of data */
	CLIENT_QUIT,
	CLIENT_IDLE,    /* kept open between messages (params.idle_keep) */
	CLIENT_CLOSING, /* QUIT sent on an idle connection: no callback any more */
	CLIENT_DONE,
};

/* The commands of one transaction whose replies are awaited, in order. */
enum client_cmd { CMD_MAIL, CMD_RCPT, CMD_DATA };

struct smtp_client {
	struct smtp_client_params p;
	struct smtp_client_msg *msg;
	smtp_client_done_fn *done;
	void *ctx;

	struct bufferevent *plain; /* the socket */
	struct bufferevent *bev;   /* plain, or the TLS filter over it */
	SSL *ssl;
	enum client_state state;
	struct smtp_reply_parser parser;
	struct smtp_ehlo_caps caps;
	bool esmtp; /* EHLO worked (else HELO: no extensions) */
	char tls_desc[96];
	bool tls_verified;
	enum smtp_client_tls_result tls_result, tls_auth;
	char local_ip[INET6_ADDRSTRLEN];

	/* the transaction: recipients [rfirst, rend) of msg; replies awaited for
	 * cmds[cmd_next..ncmds) */
	size_t rfirst, rend;
	enum client_cmd cmds[2 + 1024];
	size_t rcpt_of[2 + 1024]; /* CMD_RCPT: the recipient's index */
	size_t ncmds, cmd_next;
	size_t accepted;   /* RCPTs of this transaction the peer accepted */
	bool mail_failed;  /* MAIL refused: RCPT/DATA replies are only consumed */
	bool data_sent;    /* DATA went out (pipelined or after the RCPT replies) */
	bool pipelined;
	/* CHUNKING (RFC 3030): the message goes in BDAT chunks, one a read step;
	 * raw: BINARYMIME, sent as stored */
	bool bdat, bdat_raw;
	bool bdat_failed;      /* a chunk was refused: the outcome is decided */
	unsigned ntx;          /* transactions (MAILs) on this connection: RFC 9422 MAILMAX */
	unsigned bdat_pending; /* chunks whose reply is awaited */

	/* the message stream */
	struct smtp_wire wire;
	uint64_t read_off;
	bool reading; /* a read job is out */
	bool read_eof;
	bool cancelled; /* freed as soon as the read job is back */

	struct event *ev_free;  /* frees the client after its last callback */
	struct event *ev_start; /* starts a reused connection's transaction */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	void (*lost)(void *ctx); /* parked: the owner's */
	void *lost_ctx;
	bool reused;
	char *reason;          /* connection-level outcome */
	bool try_next, tls_failed, tls_policy_failed;
	bool finished;
};

static void client_free(struct smtp_client *c)
{
	if (c->ev_free != NULL)
		event_free(c->ev_free);
	if (c->ev_start != NULL)
		event_free(c->ev_start);
	if (c->bev != NULL && c->bev != c->plain)
		bufferevent_free(c->bev);
	if (c->plain != NULL)
		bufferevent_free(c->plain);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	smtp_reply_parser_free(&c->parser);
	free(c->reason);
	free(c);
}

static struct timeval client_tv(unsigned secs)
{
	struct timeval tv = {.tv_sec = secs, .tv_usec = 0};
	return tv;
}

static void client_set_read_timeout(struct smtp_client *c, unsigned secs)
{
	struct timeval r = client_tv(secs), w = client_tv(CLIENT_DATA_BLOCK_TIMEOUT);
	bufferevent_set_timeouts(c->bev, secs > 0 ? &r : NULL, &w);
}

/* Sets the outcome of every recipient of the transaction not decided yet. */
static void client_decide_rest(struct smtp_client *c, size_t from, size_t to,
                               enum smtp_client_result res, const char *status,
                               const char *reply, bool remote)
{
	for (size_t i = from; i < to; i++) {
		struct smtp_client_rcpt *r = &c->msg->rcpts[i];
		if (r->result != SMTP_CLIENT_UNTRIED)
			continue;
		r->result = res;
		snprintf(r->status, sizeof(r->status), "%s", status);
		free(r->reply);
		r->reply = strdup(reply != NULL ? reply : "");
		r->remote = remote;
	}
}

static void client_on_free(evutil_socket_t fd, short what, void *ctx)
{
	client_free(ctx);
}

/* Reports the outcome; the client is freed after the callback that got here has
 * returned (or when its read job is back), so callers may still look at c. */
static void client_finish(struct smtp_client *c)
{
	if (c->finished)
		return;
	c->finished = true;
	struct smtp_client_report rep = {
	    .try_next = c->try_next,
	    .tls_failed = c->tls_failed,
	    .tls_policy_failed = c->tls_policy_failed,
	    .reason = c->reason,
	    .tls = c->tls_desc[0] != '\0' ? c->tls_desc : NULL,
	    .tls_verified = c->tls_verified,
	    .tls_result = c->tls_result,
	    .tls_auth = c->tls_auth,
	    .local_ip = c->local_ip,
	    .reused = c->reused,
	};
	c->state = CLIENT_DONE;
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	c->done(c->ctx, &rep);
	if (c->reading)
		c->cancelled = true; /* freed when the read job comes back */
	else
		event_active(c->ev_free, EV_TIMEOUT, 1);
}

/* The attempt ends before any recipient was decided: the next address may do
 * (policy: because the peer did not meet the TLS policy). */
static void client_vfail(struct smtp_client *c, bool policy, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void client_vfail(struct smtp_client *c, bool policy, const char *fmt, va_list ap)
{
	free(c->reason);
	c->reason = str_vprintf(fmt, ap);
	c->try_next = true;
	c->tls_policy_failed = policy;
	client_finish(c);
}

static void client_fail_conn(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_fail_conn(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	client_vfail(c, c->tls_policy_failed, fmt, ap);
	va_end(ap);
}

/* A one-line form of reply r ("550 5.1.1 text"). */
static char *client_reply_line(const struct smtp_reply *r)
{
	struct buf b;
	buf_init(&b, 1024);
	if (smtp_reply_format(r, &b, 900) < 0) {
		buf_free(&b);
		return strdup("(reply not recorded: out of memory)");
	}
	return buf_steal(&b, NULL);
}

/* The status code of a reply: its enhanced code, else one from the class. */
static void client_status(const struct smtp_reply *r, char out[16])
{
	if (r->enhanced[0] != '\0')
		snprintf(out, 16, "%s", r->enhanced);
	else
		snprintf(out, 16, "%d.0.0", r->code / 100);
}

static void client_send(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_send(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
}

static bool client_tls_required(const struct smtp_client *c)
{
	return c->p.tls_policy != SMTP_CLIENT_TLS_OPPORTUNISTIC;
}

static const char *client_policy_name(const struct smtp_client *c)
{
	if (c->p.tls_policy_name != NULL)
		return c->p.tls_policy_name;
	return c->p.tls_policy == SMTP_CLIENT_TLS_DANE ? "DANE" : "policy";
}

/* The peer does not meet the TLS policy: this connection is given up. */
static void client_fail_policy(struct smtp_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_fail_policy(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	client_vfail(c, true, fmt, ap);
	va_end(ap);
}

static void client_quit(struct smtp_client *c)
{
	/* QUIT's reply is not waited for long: the outcome is known */
	client_send(c, "QUIT\r\n");
	c->state = CLIENT_QUIT;
	client_set_read_timeout(c, 10);
}

static void client_on_read(struct bufferevent *bev, void *ctx);
static void client_on_write(struct bufferevent *bev, void *ctx);
static void client_on_event(struct bufferevent *bev, short what, void *ctx);

static void client_send_ehlo(struct smtp_client *c)
{
	client_send(c, "EHLO %s\r\n", c->p.helo);
	c->state = CLIENT_EHLO;
	client_set_read_timeout(c, c->p.command_timeout);
}

static void client_start_transaction(struct smtp_client *c);

/* ---- AUTH (to a smarthost) ---- */

static bool client_offers_mech(const struct smtp_client *c, const char *mech)
{
	size_t n = strlen(mech);
	for (const char *p = c->caps.auth; (p = strstr(p, mech)) != NULL; p += n)
		if ((p == c->caps.auth || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

static void client_send_b64(struct smtp_client *c, const char *prefix, const void *data,
                            size_t len)
{
	char *b64 = NULL;
	if (base64_encode(data, len, &b64) < 0) {
		client_fail_conn(c, "out of memory");
		return;
	}
	client_send(c, "%s%s\r\n", prefix, len > 0 ? b64 : "=");
	OPENSSL_cleanse(b64, strlen(b64));
	free(b64);
}

/* After EHLO inside TLS: AUTH PLAIN, or LOGIN. Never in plain text: the
 * password would travel in the clear. */
static void client_start_auth(struct smtp_client *c)
{
	if (c->ssl == NULL) {
		client_fail_conn(c, "the server does not offer TLS (STARTTLS): AUTH is only "
		                           "sent over TLS");
		return;
	}
	if (client_offers_mech(c, "PLAIN")) {
		size_t ul = strlen(c->p.auth_user), pl = strlen(c->p.auth_pass);
		char *msg = malloc(ul + pl + 2);
		if (msg == NULL) {
			client_fail_conn(c, "out of memory");
			return;
		}
		/* RFC 4616: authzid NUL authcid NUL passwd, no authzid */
		msg[0] = '\0';
		memcpy(msg + 1, c->p.auth_user, ul);
		msg[ul + 1] = '\0';
		memcpy(msg + ul + 2, c->p.auth_pass, pl);
		client_send_b64(c, "AUTH PLAIN ", msg, ul + pl + 2);
		OPENSSL_cleanse(msg, ul + pl + 2);
		free(msg);
		c->state = CLIENT_AUTH;
		return;
	}
	if (client_offers_mech(c, "LOGIN")) {
		client_send(c, "AUTH LOGIN\r\n");
		c->state = CLIENT_AUTH;
		return;
	}
	client_fail_conn(c, "the server offers neither AUTH PLAIN nor AUTH LOGIN (AUTH %s)",
	                 c->caps.auth[0] != '\0' ? c->caps.auth : "not offered");
}

static void client_on_auth_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	if (r->code == 235) {
		client_start_transaction(c);
		return;
	}
	if (r->code == 334 && c->state == CLIENT_AUTH) {
		client_send_b64(c, "", c->p.auth_user, strlen(c->p.auth_user));
		c->state = CLIENT_AUTH_USER;
		return;
	}
	if (r->code == 334 && c->state == CLIENT_AUTH_USER) {
		client_send_b64(c, "", c->p.auth_pass, strlen(c->p.auth_pass));
		c->state = CLIENT_AUTH_PASS;
		return;
	}
	char *line = client_reply_line(r);
	/* a refused login is the configuration's fault: defer, never bounce */
	client_fail_conn(c, "AUTH failed: %s", line);
	free(line);
}

/* ---- TLS ---- */

static int client_start_tls(struct smtp_client *c)
{
	SSL *ssl = SSL_new(c->p.tls);
	if (ssl == NULL)
		return -1;
	/* SNI and the name the certificate is checked against (recorded; whether it
	 * is required is the policy's business: MTA-STS, DANE) */
	unsigned char bin[16];
	bool is_ip = c->p.host == NULL || inet_pton(AF_INET, c->p.host, bin) == 1 ||
	             inet_pton(AF_INET6, c->p.host, bin) == 1;
	/* RFC 6066 3: SNI names a host, never an address */
	if (!is_ip && c->p.host[0] != '\0')
		SSL_set_tlsext_host_name(ssl, c->p.host);
	if (c->p.tls_policy == SMTP_CLIENT_TLS_DANE && c->p.ntlsa > 0) {
		/* RFC 7672 3.2: the TLSA base domain is the reference name (for
		 * DANE-TA), DANE-EE(3) ignores names (3.1.1) */
		if (SSL_dane_enable(ssl, c->p.host) <= 0) {
			SSL_free(ssl);
			return -1;
		}
		SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (c->p.tls_name2 != NULL)
			SSL_add1_host(ssl, c->p.tls_name2);
		for (size_t i = 0; i < c->p.ntlsa; i++) {
			const struct dns_tlsa *t = &c->p.tlsa[i];
			/* unusable ones (<= 0) are skipped: the runner passes only
			 * usages 2 and 3, OpenSSL may still refuse a digest */
			(void)SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len);
		}
	} else if (!is_ip && c->p.host[0] != '\0') {
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		SSL_set1_host(ssl, c->p.host);
	} else if (c->p.host != NULL && c->p.host[0] != '\0') {
		/* a host given as an address (a smarthost): its certificate names it */
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->p.host);
	}
	/* RFC 3207 5 / the STARTTLS injection class: nothing the peer sent after its
	 * 220 may be read as a reply inside TLS */
	struct evbuffer *in = bufferevent_get_input(c->plain);
	evbuffer_drain(in, evbuffer_get_length(in));
	struct bufferevent *tb = bufferevent_openssl_filter_new(
	    c->p.base, c->plain, ssl, BUFFEREVENT_SSL_CONNECTING, 0);
	if (tb == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_set_timeouts(c->plain, NULL, NULL);
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	c->bev = tb;
	c->ssl = ssl;
	c->state = CLIENT_HANDSHAKE;
	bufferevent_setcb(tb, client_on_read, client_on_write, client_on_event, c);
	client_set_read_timeout(c, c->p.command_timeout);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	return 1;
}

static void client_tls_done(struct smtp_client *c)
{
	char desc[96];
	snprintf(c->tls_desc, sizeof(c->tls_desc), "%s", tls_describe(c->ssl, desc, sizeof(desc)));
	long vr = SSL_get_verify_result(c->ssl);
	bool dane = c->p.tls_policy == SMTP_CLIENT_TLS_DANE && c->p.ntlsa > 0;
	c->tls_verified = vr == X509_V_OK && SSL_get0_peer_certificate(c->ssl) != NULL &&
	                  (!dane || SSL_get0_dane_authority(c->ssl, NULL, NULL) >= 0);
	c->tls_auth = c->tls_verified                         ? SMTP_CLIENT_TLS_OK
	              : dane                                  ? SMTP_CLIENT_TLS_DANE_MISMATCH
	              : vr == X509_V_ERR_HOSTNAME_MISMATCH    ? SMTP_CLIENT_TLS_HOST_MISMATCH
	              : vr == X509_V_ERR_IP_ADDRESS_MISMATCH  ? SMTP_CLIENT_TLS_HOST_MISMATCH
	              : vr == X509_V_ERR_CERT_HAS_EXPIRED     ? SMTP_CLIENT_TLS_EXPIRED
	                                                      : SMTP_CLIENT_TLS_UNTRUSTED;
	c->tls_result = SMTP_CLIENT_TLS_OK;
	if (!c->tls_verified && (dane || c->p.tls_policy == SMTP_CLIENT_TLS_VERIFY)) {
		c->tls_result = c->tls_auth;
		/* not the server the policy names: say goodbye inside TLS, give up */
		free(c->reason);
		c->reason = str_printf("TLS certificate not authenticated (%s): %s",
		                       client_policy_name(c),
		                       vr != X509_V_OK ? X509_verify_cert_error_string(vr)
		                                       : "no certificate");
		c->try_next = true;
		c->tls_policy_failed = true;
		client_quit(c);
		return;
	}
	/* RFC 3207 4.2: forget what EHLO said before TLS, ask again */
	memset(&c->caps, 0, sizeof(c->caps));
	client_send_ehlo(c);
}

/* ---- the message ---- */

struct client_read {
	struct smtp_client *c;
	struct buf out;
	bool eof, failed;
	struct worker_post *post;
};

static void client_read_job(void *arg)
{
	struct client_read *rd = arg;
	struct smtp_client *c = rd->c;
	struct smtp_client_msg *m = c->msg;
	char *tmp = malloc(CLIENT_READ_STEP);
	uint64_t left = m->len - c->read_off;
	size_t want = left < CLIENT_READ_STEP ? (size_t)left : CLIENT_READ_STEP;

	if (tmp == NULL) {
		rd->failed = true;
		return;
	}
	size_t got = 0;
	while (got < want) {
		ssize_t n = pread(m->fd, tmp + got, want - got, (off_t)(m->off + c->read_off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rd->failed = true;
			free(tmp);
			return;
		}
		got += (size_t)n;
	}
	if (c->bdat_raw ? buf_append(&rd->out, tmp, got) < 0
	                : smtp_wire_encode(&c->wire, tmp, got, &rd->out) < 0)
		rd->failed = true;
	c->read_off += got;
	if (!rd->failed && c->read_off >= m->len) {
		rd->eof = true;
		if (!c->bdat_raw && smtp_wire_finish(&c->wire, &rd->out) < 0)
			rd->failed = true;
	}
	free(tmp);
}

static void client_next_step(struct smtp_client *c);

static void client_read_done(void *arg)
{
	struct client_read *rd = arg;
	struct smtp_client *c = rd->c;

	c->reading = false;
	if (c->cancelled) {
		buf_free(&rd->out);
		free(rd);
		client_free(c);
		return;
	}
	if (rd->failed) {
		buf_free(&rd->out);
		free(rd);
		/* our own fault: nothing was decided, the same message may go later */
		client_decide_rest(c, c->rfirst, c->rend, SMTP_CLIENT_DEFERRED, "4.3.0",
		                   "local error reading the queued message", false);
		free(c->reason);
		c->reason = strdup("local error reading the queued message");
		client_finish(c); /* the connection is dropped mid-data: the peer discards it */
		return;
	}
	if (c->state != CLIENT_BODY) {
		/* a refused chunk ended the transaction meanwhile */
		buf_free(&rd->out);
		free(rd);
		return;
	}
	if (c->bdat) {
		/* RFC 3030 2: BDAT <size> [LAST], then exactly size octets */
		evbuffer_add_printf(bufferevent_get_output(c->bev), "BDAT %zu%s\r\n", rd->out.len,
		                    rd->eof ? " LAST" : "");
		c->bdat_pending++;
	}
	evbuffer_add(bufferevent_get_output(c->bev), rd->out.data, rd->out.len);
	buf_free(&rd->out);
	if (rd->eof) {
		free(rd);
		c->read_eof = true;
		c->state = CLIENT_DOT;
		client_set_read_timeout(c, CLIENT_DATA_END_TIMEOUT);
		return;
	}
	free(rd);
	if (c->bdat && !c->pipelined) {
		/* one chunk at a time: the next after this one's reply */
		client_set_read_timeout(c, CLIENT_DATA_BLOCK_TIMEOUT);
		return;
	}
	client_next_step(c);
}

/* Starts the next read when the output has room; else waits for the drain. */
static void client_next_step(struct smtp_client *c)
{
	if (c->reading || c->read_eof || c->state != CLIENT_BODY)
		return;
	if (c->bdat && !c->pipelined && c->bdat_pending > 0)
		return;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) >= CLIENT_OUTPUT_LOW) {
		bufferevent_setwatermark(c->bev, EV_WRITE, CLIENT_OUTPUT_LOW / 2, 0);
		return;
	}
	struct client_read *rd = calloc(1, sizeof(*rd));
	if (rd == NULL) {
		client_fail_conn(c, "out of memory");
		return;
	}
	rd->c = c;
	/* the encoding grows at most 4x + 4 (smtp_wire_encode) */
	buf_init(&rd->out, 4 * (size_t)CLIENT_READ_STEP + 64);
	c->reading = true;
	if (worker_pool_submit(c->p.pool, c->p.inbox, client_read_job, client_read_done, rd) < 0) {
		c->reading = false;
		free(rd);
		client_fail_conn(c, "out of memory");
	}
}

static void client_start_body(struct smtp_client *c)
{
	c->state = CLIENT_BODY;
	smtp_wire_init(&c->wire, !c->bdat);
	c->read_off = 0;
	c->read_eof = false;
	c->bdat_failed = false;
	c->bdat_pending = 0;
	if (c->msg->prefix_len > 0) {
		/* short (a few header fields): encoded on the loop */
		struct buf b;
		buf_init(&b, 4 * c->msg->prefix_len + 64);
		if (smtp_wire_encode(&c->wire, c->msg->prefix, c->msg->prefix_len, &b) < 0) {
			buf_free(&b);
			client_fail_conn(c, "out of memory");
			return;
		}
		if (c->bdat) {
			/* the header fields in front go as a chunk of their own */
			evbuffer_add_printf(bufferevent_get_output(c->bev), "BDAT %zu\r\n", b.len);
			c->bdat_pending++;
		}
		evbuffer_add(bufferevent_get_output(c->bev), b.data, b.len);
		buf_free(&b);
	}
	/* no reply is due while the message goes out (but BDAT replies); the write
	 * timeout guards it */
	client_set_read_timeout(c, c->bdat && c->bdat_pending > 0 ? CLIENT_DATA_BLOCK_TIMEOUT : 0);
	client_next_step(c);
}

/* The reply to a BDAT chunk: the last one's decides the transaction, an
 * earlier refusal decides it at once (the rest is not sent). */
static void client_transaction_end(struct smtp_client *c);
static void client_on_bdat_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	if (c->bdat_pending == 0) {
		client_fail_conn(c, "protocol error from the server: a reply nothing asked for");
		return;
	}
	c->bdat_pending--;
	bool last = c->state == CLIENT_DOT && c->bdat_pending == 0;
	if (!c->bdat_failed && (r->code / 100 != 2 || last)) {
		char status[16];
		char *line = client_reply_line(r);
		client_status(r, status);
		enum smtp_client_result res = r->code / 100 == 2   ? SMTP_CLIENT_DELIVERED
		                              : r->code / 100 == 5 ? SMTP_CLIENT_BOUNCED
		                                                   : SMTP_CLIENT_DEFERRED;
		client_decide_rest(c, c->rfirst, c->rend, res, status, line, true);
		free(line);
		c->bdat_failed = r->code / 100 != 2;
	}
	if (last) {
		client_transaction_end(c);
		return;
	}
	if (c->bdat_failed) {
		/* the outcome is known; the session is not worth resynchronising */
		client_quit(c);
		return;
	}
	if (c->state == CLIENT_BODY && !c->pipelined)
		client_next_step(c);
}

/* ---- the transaction ---- */

/* Appends the MAIL command's parameters that the peer supports. */
static void client_mail_params(struct smtp_client *c, struct evbuffer *out)
{
	const struct smtp_client_msg *m = c->msg;
	if (!c->esmtp)
		return;
	if (c->caps.size)
		evbuffer_add_printf(out, " SIZE=%llu", (unsigned long long)(m->len + m->prefix_len));
	if (m->body == STORE_BODY_8BITMIME && c->caps.eightbitmime)
		evbuffer_add_printf(out, " BODY=8BITMIME");
	if (m->body == STORE_BODY_BINARYMIME && c->bdat_raw)
		evbuffer_add_printf(out, " BODY=BINARYMIME");
	if (m->smtputf8 && c->caps.smtputf8)
		evbuffer_add_printf(out, " SMTPUTF8");
	if (m->requiretls && c->caps.requiretls)
		evbuffer_add_printf(out, " REQUIRETLS");
	if (c->caps.dsn) {
		if (m->ret == STORE_RET_FULL)
			evbuffer_add_printf(out, " RET=FULL");
		else if (m->ret == STORE_RET_HDRS)
			evbuffer_add_printf(out, " RET=HDRS");
		if (m->envid != NULL)
			evbuffer_add_printf(out, " ENVID=%s", m->envid);
	}
}

static void client_rcpt_params(struct smtp_client *c, const struct smtp_client_rcpt *r,
                               struct evbuffer *out)
{
	if (!c->esmtp || !c->caps.dsn)
		return;
	if (r->notify != 0) {
		if (r->notify & STORE_NOTIFY_NEVER) {
			evbuffer_add_printf(out, " NOTIFY=NEVER");
		} else {
			const char *sep = " NOTIFY=";
			static const struct {
				unsigned bit;
				const char *name;
			} kw[] = {{STORE_NOTIFY_SUCCESS, "SUCCESS"},
			          {STORE_NOTIFY_FAILURE, "FAILURE"},
			          {STORE_NOTIFY_DELAY, "DELAY"}};
			for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
				if (r->notify & kw[i].bit) {
					evbuffer_add_printf(out, "%s%s", sep, kw[i].name);
					sep = ",";
				}
		}
	}
	if (r->orcpt != NULL)
		evbuffer_add_printf(out, " ORCPT=%s", r->orcpt);
}

/* What this peer cannot take at all, decided before MAIL (so the message is
 * bounced with a clear reason instead of being refused or mangled). NULL: ok. */
static const char *client_refusal(struct smtp_client *c, const char **status_r)
{
	const struct smtp_client_msg *m = c->msg;
	if (c->msg->smtputf8 && !(c->esmtp && c->caps.smtputf8)) {
		/* RFC 6531 3.4: no downgrade here */
		*status_r = "5.6.7";
		return "the message needs SMTPUTF8 (internationalized addresses or header) and "
		       "the receiving server does not support it";
	}
	if (m->requiretls && !(c->esmtp && c->caps.requiretls && c->ssl != NULL)) {
		/* RFC 8689 4.2.1 */
		*status_r = "5.7.30";
		return "REQUIRETLS support required: the message asks for REQUIRETLS and the "
		       "receiving server does not offer it";
	}
	if (m->body == STORE_BODY_BINARYMIME &&
	    !(c->esmtp && c->caps.chunking && c->caps.binarymime)) {
		/* RFC 3030 3: no conversion here */
		*status_r = "5.6.3";
		return "the message is BINARYMIME and the receiving server does not support "
		       "BINARYMIME and CHUNKING";
	}
	if (c->esmtp && c->caps.size && c->caps.size_max != 0 &&
	    m->len + m->prefix_len > c->caps.size_max) {
		*status_r = "5.3.4";
		return "the message is larger than the receiving server accepts (its SIZE)";
	}
	return NULL;
}

static void client_send_data(struct smtp_client *c)
{
	client_send(c, "DATA\r\n");
	c->cmds[c->ncmds++] = CMD_DATA;
	c->data_sent = true;
}

static void client_start_transaction(struct smtp_client *c)
{
	struct smtp_client_msg *m = c->msg;
	const char *status = NULL, *why;

	if (c->rfirst >= m->nrcpts) {
		client_quit(c);
		return;
	}
	if ((why = client_refusal(c, &status)) != NULL) {
		client_decide_rest(c, c->rfirst, m->nrcpts, SMTP_CLIENT_BOUNCED, status, why, false);
		client_quit(c);
		return;
	}
	size_t max = sizeof(c->cmds) / sizeof(c->cmds[0]) - 2;
	if (c->esmtp && c->caps.rcptmax != 0 && c->caps.rcptmax < max)
		max = c->caps.rcptmax; /* RFC 9422: more go in the next transaction */
	c->rend = m->nrcpts - c->rfirst > max ? c->rfirst + max : m->nrcpts;
	c->ncmds = c->cmd_next = 0;
	c->accepted = 0;
	c->mail_failed = false;
	c->data_sent = false;
	c->pipelined = c->esmtp && c->caps.pipelining;
	c->bdat = c->esmtp && c->caps.chunking;
	c->bdat_raw = c->bdat && m->body == STORE_BODY_BINARYMIME;

	c->ntx++;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out, "MAIL FROM:<%s>", m->sender);
	client_mail_params(c, out);
	evbuffer_add(out, "\r\n", 2);
	c->cmds[c->ncmds++] = CMD_MAIL;
	if (c->pipelined) {
		for (size_t i = c->rfirst; i < c->rend; i++) {
			evbuffer_add_printf(out, "RCPT TO:<%s>", m->rcpts[i].addr);
			client_rcpt_params(c, &m->rcpts[i], out);
			evbuffer_add(out, "\r\n", 2);
			c->rcpt_of[c->ncmds] = i;
			c->cmds[c->ncmds++] = CMD_RCPT;
		}
		/* with CHUNKING the first BDAT waits for the RCPT replies: no chunk
		 * is sent for nobody */
		if (!c->bdat)
			client_send_data(c);
	}
	c->state = CLIENT_TRANSACTION;
	client_set_read_timeout(c, c->p.command_timeout);
}

/* After the replies so far (without PIPELINING; with it, the RCPT replies
 * before the first BDAT): the next command. 1 something went out (or the
 * message started), 0 nothing is left to send. */
static int client_send_next(struct smtp_client *c)
{
	struct smtp_client_msg *m = c->msg;
	size_t sent_rcpts = c->ncmds - 1; /* after MAIL */
	if (c->rfirst + sent_rcpts < c->rend) {
		size_t i = c->rfirst + sent_rcpts;
		struct evbuffer *out = bufferevent_get_output(c->bev);
		evbuffer_add_printf(out, "RCPT TO:<%s>", m->rcpts[i].addr);
		client_rcpt_params(c, &m->rcpts[i], out);
		evbuffer_add(out, "\r\n", 2);
		c->rcpt_of[c->ncmds] = i;
		c->cmds[c->ncmds++] = CMD_RCPT;
		return 1;
	}
	if (c->accepted == 0)
		return 0;
	if (c->bdat) {
		client_start_body(c);
		return 1;
	}
	client_send_data(c);
	return 1;
}

/* The transaction is over (data accepted or refused, or nothing accepted):
 * the next one for the recipients left, or QUIT. */
/* Every transaction of the message is over and the connection is sound: keep
 * it for the next message. The owner decides (park, reuse or close). */
static void client_go_idle(struct smtp_client *c)
{
	struct smtp_client_report rep = {
	    .reason = c->reason,
	    .tls = c->tls_desc[0] != '\0' ? c->tls_desc : NULL,
	    .tls_verified = c->tls_verified,
	    .tls_result = c->tls_result,
	    .tls_auth = c->tls_auth,
	    .local_ip = c->local_ip,
	    .idle = true,
	    .reused = c->reused,
	};
	c->state = CLIENT_IDLE;
	client_set_read_timeout(c, c->p.idle_keep);
	smtp_client_done_fn *done = c->done;
	c->done = NULL;
	done(c->ctx, &rep);
}

/* RFC 9422: the peer takes no more transactions on this connection */
static bool client_mailmax_reached(const struct smtp_client *c)
{
	return c->esmtp && c->caps.mailmax != 0 && c->ntx >= c->caps.mailmax;
}

static void client_transaction_end(struct smtp_client *c)
{
	c->rfirst = c->rend;
	if (c->rfirst < c->msg->nrcpts && client_mailmax_reached(c)) {
		/* the rest on another connection, at the next try */
		client_decide_rest(c, c->rfirst, c->msg->nrcpts, SMTP_CLIENT_DEFERRED, "4.5.3",
		                   "the server takes no more transactions on one connection "
		                   "(LIMITS MAILMAX)",
		                   false);
		client_quit(c);
		return;
	}
	if (c->rfirst < c->msg->nrcpts) {
		/* RSET is not needed after a completed or refused transaction */
		client_start_transaction(c);
		return;
	}
	if (c->p.idle_keep > 0 && !c->try_next && !client_mailmax_reached(c)) {
		client_go_idle(c);
		return;
	}
	client_quit(c);
}

/* An idle connection ended (closed, timed out, spoke): tell the owner, free. */
static void client_idle_lost(struct smtp_client *c)
{
	c->state = CLIENT_DONE;
	c->finished = true;
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	if (c->lost != NULL)
		c->lost(c->lost_ctx);
	event_active(c->ev_free, EV_TIMEOUT, 1);
}

static void client_on_tx_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	if (c->cmd_next >= c->ncmds) {
		client_fail_conn(c, "protocol error from the server: a reply nothing asked for");
		return;
	}
	enum client_cmd cmd = c->cmds[c->cmd_next];
	size_t idx = c->rcpt_of[c->cmd_next];
	char status[16];
	c->cmd_next++;
	client_status(r, status);

	switch (cmd) {
	case CMD_MAIL:
		if (r->code / 100 != 2) {
			c->mail_failed = true;
			char *line = client_reply_line(r);
			if (r->code / 100 == 4 && c->rfirst == 0) {
				/* nothing decided yet: another server may take it */
				free(c->reason);
				c->reason = line;
				c->try_next = true;
				if (!c->pipelined) {
					client_quit(c);
					return;
				}
			} else {
				client_decide_rest(c, c->rfirst, c->rend,
				                   r->code / 100 == 5 ? SMTP_CLIENT_BOUNCED
				                                      : SMTP_CLIENT_DEFERRED,
				                   status, line, true);
				free(line);
				if (!c->pipelined) {
					client_transaction_end(c);
					return;
				}
			}
		}
		break;
	case CMD_RCPT: {
		struct smtp_client_rcpt *rc = &c->msg->rcpts[idx];
		if (c->mail_failed)
			break;
		if (r->code / 100 == 2) {
			c->accepted++;
			/* decided when the data's reply comes */
			break;
		}
		rc->result = r->code / 100 == 5 ? SMTP_CLIENT_BOUNCED : SMTP_CLIENT_DEFERRED;
		snprintf(rc->status, sizeof(rc->status), "%s", status);
		free(rc->reply);
		rc->reply = client_reply_line(r);
		rc->remote = true;
		break;
	}
	case CMD_DATA:
		if (c->mail_failed || c->accepted == 0 || r->code != 354) {
			if (!c->mail_failed && c->accepted > 0) {
				char *line = client_reply_line(r);
				client_decide_rest(c, c->rfirst, c->rend,
				                   r->code / 100 == 5 ? SMTP_CLIENT_BOUNCED
				                                      : SMTP_CLIENT_DEFERRED,
				                   status, line, true);
				free(line);
			}
			if (c->try_next) {
				client_quit(c);
				return;
			}
			client_transaction_end(c);
			return;
		}
		client_start_body(c);
		return;
	}
	if (c->cmd_next < c->ncmds)
		return; /* more replies are due (pipelined) */
	if (c->try_next) {
		client_quit(c);
		return;
	}
	if (c->mail_failed || (c->pipelined && !c->bdat)) {
		/* every reply is in and DATA was not accepted (handled above) */
		client_transaction_end(c);
		return;
	}
	if (client_send_next(c) == 0) /* no recipient was accepted */
		client_transaction_end(c);
}

static void client_on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	switch (c->state) {
	case CLIENT_GREETING:
		if (r->code != 220) {
			char *line = client_reply_line(r);
			client_fail_conn(c, "greeting: %s", line);
			free(line);
			return;
		}
		client_send_ehlo(c);
		return;
	case CLIENT_EHLO:
		if (r->code == 250) {
			c->esmtp = true;
			smtp_ehlo_caps_parse(r, &c->caps);
			if (c->ssl == NULL && c->caps.starttls && c->p.tls != NULL &&
			    (!c->p.tls_disabled || client_tls_required(c))) {
				client_send(c, "STARTTLS\r\n");
				c->state = CLIENT_STARTTLS;
				return;
			}
			if (c->ssl == NULL && !c->caps.starttls && c->p.tls != NULL &&
			    !c->p.tls_disabled)
				c->tls_result = SMTP_CLIENT_TLS_NO_STARTTLS;
			if (c->ssl == NULL && client_tls_required(c)) {
				client_fail_policy(c, "the server does not offer STARTTLS (required by %s)",
				                   client_policy_name(c));
				return;
			}
			if (c->p.auth_user != NULL) {
				client_start_auth(c);
				return;
			}
			client_start_transaction(c);
			return;
		}
		if (r->code / 100 == 5 && client_tls_required(c)) {
			char *line = client_reply_line(r);
			client_fail_policy(c, "EHLO refused, no STARTTLS (required by %s): %s",
			                   client_policy_name(c), line);
			free(line);
			return;
		}
		if (r->code / 100 == 5) {
			/* RFC 5321 3.2: a server that does not know EHLO */
			client_send(c, "HELO %s\r\n", c->p.helo);
			c->state = CLIENT_HELO;
			return;
		} else {
			char *line = client_reply_line(r);
			client_fail_conn(c, "EHLO: %s", line);
			free(line);
		}
		return;
	case CLIENT_HELO:
		if (r->code != 250) {
			char *line = client_reply_line(r);
			client_fail_conn(c, "HELO: %s", line);
			free(line);
			return;
		}
		c->esmtp = false;
		memset(&c->caps, 0, sizeof(c->caps));
		if (c->p.auth_user != NULL) {
			client_fail_conn(c, "the server does not speak ESMTP: no AUTH");
			return;
		}
		client_start_transaction(c);
		return;
	case CLIENT_STARTTLS:
		if (r->code != 220)
			c->tls_result = SMTP_CLIENT_TLS_NO_STARTTLS;
		if (r->code != 220 && client_tls_required(c)) {
			char *line = client_reply_line(r);
			client_fail_policy(c, "STARTTLS refused (required by %s): %s",
			                   client_policy_name(c), line);
			free(line);
			return;
		}
		if (r->code != 220) {
			/* opportunistic: go on without it (AUTH refuses to) */
			if (c->p.auth_user != NULL)
				client_start_auth(c);
			else
				client_start_transaction(c);
			return;
		}
		if (client_start_tls(c) < 0)
			client_fail_conn(c, "cannot start TLS (out of memory)");
		return;
	case CLIENT_AUTH:
	case CLIENT_AUTH_USER:
	case CLIENT_AUTH_PASS:
		client_on_auth_reply(c, r);
		return;
	case CLIENT_TRANSACTION:
		client_on_tx_reply(c, r);
		return;
	case CLIENT_BODY:
		if (c->bdat) {
			client_on_bdat_reply(c, r);
			return;
		}
		/* a reply before the end of the data: the peer gave up on it */
		/* fall through */
	case CLIENT_DOT: {
		if (c->bdat) {
			client_on_bdat_reply(c, r);
			return;
		}
		char status[16];
		char *line = client_reply_line(r);
		client_status(r, status);
		enum smtp_client_result res = r->code / 100 == 2   ? SMTP_CLIENT_DELIVERED
		                              : r->code / 100 == 5 ? SMTP_CLIENT_BOUNCED
		                                                   : SMTP_CLIENT_DEFERRED;
		if (c->state == CLIENT_BODY && res == SMTP_CLIENT_DELIVERED)
			res = SMTP_CLIENT_DEFERRED; /* not a valid answer before the end */
		client_decide_rest(c, c->rfirst, c->rend, res, status, line, true);
		free(line);
		if (c->state == CLIENT_BODY) {
			client_finish(c);
			return;
		}
		client_transaction_end(c);
		return;
	}
	case CLIENT_QUIT:
		client_finish(c);
		return;
	case CLIENT_IDLE: /* 421 or anything else unasked for: it is over */
		client_idle_lost(c);
		return;
	case CLIENT_CLOSING:
		client_idle_lost(c);
		return;
	default:
		return;
	}
}

static void client_on_read(struct bufferevent *bev, void *ctx)
{
	struct smtp_client *c = ctx;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (evbuffer_get_length(in) > 0 && !c->finished) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t used = 0;
		enum smtp_reply_result res = smtp_reply_feed(&c->parser, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (res == SMTP_REPLY_ERROR) {
			const char *why = c->parser.error != NULL ? c->parser.error : "bad reply";
			if (c->state == CLIENT_DOT || c->state == CLIENT_BODY) {
				/* the message may or may not have been taken: retry later
				 * (at least once, never lost) */
				client_decide_rest(c, c->rfirst, c->rend, SMTP_CLIENT_DEFERRED,
				                   "4.4.2", why, false);
			}
			client_fail_conn(c, "protocol error from the server: %s", why);
			return;
		}
		if (res == SMTP_REPLY_NEED_MORE)
			continue;
		client_on_reply(c, &c->parser.reply);
		smtp_reply_parser_reset(&c->parser);
		if (c->finished)
			return;
		/* STARTTLS replaced the bufferevent: what is left of the old input
		 * was discarded there */
		if (bufferevent_get_input(c->bev) != in)
			return;
	}
}

static void client_on_write(struct bufferevent *bev, void *ctx)
{
	struct smtp_client *c = ctx;
	if (c->state == CLIENT_BODY) {
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		client_next_step(c);
	}
}

static void client_on_event(struct bufferevent *bev, short what, void *ctx)
{
	struct smtp_client *c = ctx;

	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CLIENT_CONNECTING) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&ss, &sl) == 0) {
				const void *a = ss.ss_family == AF_INET6
				                    ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
				                    : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
				if (inet_ntop(ss.ss_family, a, c->local_ip, sizeof(c->local_ip)) == NULL)
					c->local_ip[0] = '\0';
			}
			c->state = CLIENT_GREETING;
			client_set_read_timeout(c, c->p.command_timeout);
			bufferevent_enable(bev, EV_READ | EV_WRITE);
			return;
		}
		if (c->state == CLIENT_HANDSHAKE) {
			client_tls_done(c);
			return;
		}
		return;
	}
	const char *stage;
	switch (c->state) {
	case CLIENT_CONNECTING: stage = "connect"; break;
	case CLIENT_GREETING: stage = "greeting"; break;
	case CLIENT_HANDSHAKE: stage = "TLS handshake"; break;
	case CLIENT_BODY: stage = "sending the message"; break;
	case CLIENT_DOT: stage = "end of data"; break;
	case CLIENT_QUIT: client_finish(c); return;
	case CLIENT_IDLE:
	case CLIENT_CLOSING: client_idle_lost(c); return;
	default: stage = "command"; break;
	}
	char why[200];
	if (what & BEV_EVENT_TIMEOUT)
		snprintf(why, sizeof(why), "timeout (%s)", stage);
	else if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "connection closed by the server (%s)", stage);
	else {
		unsigned long e = c->ssl != NULL ? bufferevent_get_openssl_error(bev) : 0;
		int err = EVUTIL_SOCKET_ERROR();
		if (e != 0) {
			char eb[120];
			ERR_error_string_n(e, eb, sizeof(eb));
			snprintf(why, sizeof(why), "%s failed: %s", stage, eb);
		} else {
			snprintf(why, sizeof(why), "%s failed: %s", stage,
			         err != 0 ? evutil_socket_error_to_string(err) : "error");
		}
	}
	if (c->state == CLIENT_HANDSHAKE) {
		c->tls_result = SMTP_CLIENT_TLS_HANDSHAKE;
		c->tls_failed = true;
		c->tls_policy_failed = client_tls_required(c);
	}
	if (c->state == CLIENT_BODY || c->state == CLIENT_DOT) {
		/* lost with the message in flight: not delivered as far as we know */
		client_decide_rest(c, c->rfirst, c->rend, SMTP_CLIENT_DEFERRED, "4.4.2", why, false);
		free(c->reason);
		c->reason = strdup(why);
		client_finish(c);
		return;
	}
	/* recipients decided in earlier transactions keep their outcome; the rest
	 * stay untried (the runner defers them) */
	bool decided = false;
	for (size_t i = 0; i < c->msg->nrcpts; i++)
		if (c->msg->rcpts[i].result != SMTP_CLIENT_UNTRIED)
			decided = true;
	if (decided) {
		free(c->reason);
		c->reason = strdup(why);
		client_finish(c);
		return;
	}
	client_fail_conn(c, "%s", why);
}

static void client_on_start(evutil_socket_t fd, short what, void *ctx)
{
	struct smtp_client *c = ctx;
	if (!c->finished && c->state == CLIENT_TRANSACTION && c->ncmds == 0)
		client_start_transaction(c);
}

void smtp_client_park(struct smtp_client *c, void (*lost)(void *ctx), void *ctx)
{
	c->lost = lost;
	c->lost_ctx = ctx;
}

int smtp_client_reuse(struct smtp_client *c, struct smtp_client_msg *msg,
                      smtp_client_done_fn *done, void *ctx)
{
	if (c->state != CLIENT_IDLE) {
		smtp_client_cancel(&c);
		return -1;
	}
	c->lost = NULL;
	c->lost_ctx = NULL;
	c->msg = msg;
	c->done = done;
	c->ctx = ctx;
	c->reused = true;
	c->rfirst = c->rend = 0;
	c->try_next = c->tls_failed = c->tls_policy_failed = false;
	free(c->reason);
	c->reason = NULL;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		msg->rcpts[i].result = SMTP_CLIENT_UNTRIED;
		msg->rcpts[i].status[0] = '\0';
	}
	/* the transaction starts from the loop, not from inside the caller */
	c->state = CLIENT_TRANSACTION;
	c->ncmds = c->cmd_next = 0;
	client_set_read_timeout(c, c->p.command_timeout);
	event_active(c->ev_start, EV_TIMEOUT, 1);
	return 1;
}

void smtp_client_close(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	if (c->state != CLIENT_IDLE) {
		smtp_client_cancel(&c);
		return;
	}
	c->lost = NULL;
	client_send(c, "QUIT\r\n");
	c->state = CLIENT_CLOSING;
	client_set_read_timeout(c, 10);
}

const struct sockaddr *smtp_client_addr(const struct smtp_client *c, socklen_t *len_r)
{
	*len_r = c->peerlen;
	return (const struct sockaddr *)&c->peer;
}

int smtp_client_start(const struct smtp_client_params *params, struct smtp_client_msg *msg,
                      smtp_client_done_fn *done, void *ctx, struct smtp_client **c_r,
                      char **error_r)
{
	struct smtp_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		*error_r = strdup("out of memory");
		return -1;
	}
	c->p = *params;
	if (c->p.connect_timeout == 0)
		c->p.connect_timeout = CLIENT_CONNECT_TIMEOUT;
	if (c->p.command_timeout == 0)
		c->p.command_timeout = CLIENT_COMMAND_TIMEOUT;
	c->msg = msg;
	c->done = done;
	c->ctx = ctx;
	smtp_reply_parser_init(&c->parser);
	c->ev_free = event_new(params->base, -1, 0, client_on_free, c);
	c->ev_start = event_new(params->base, -1, 0, client_on_start, c);
	if (params->addrlen <= sizeof(c->peer)) {
		memcpy(&c->peer, params->addr, params->addrlen);
		c->peerlen = params->addrlen;
	}
	if (c->ev_free == NULL || c->ev_start == NULL) {
		client_free(c);
		*error_r = strdup("out of memory");
		return -1;
	}
	for (size_t i = 0; i < msg->nrcpts; i++) {
		msg->rcpts[i].result = SMTP_CLIENT_UNTRIED;
		msg->rcpts[i].status[0] = '\0';
	}

	evutil_socket_t fd = socket(params->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (asprintf(error_r, "socket: %s", strerror(errno)) < 0)
			*error_r = NULL;
		client_free(c);
		return -1;
	}
	if (params->source != NULL &&
	    bind(fd, params->source, params->sourcelen) < 0) {
		if (asprintf(error_r, "cannot bind the source address: %s", strerror(errno)) < 0)
			*error_r = NULL;
		close(fd);
		client_free(c);
		return -1;
	}
	c->plain = bufferevent_socket_new(params->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->plain == NULL) {
		close(fd);
		client_free(c);
		*error_r = strdup("out of memory");
		return -1;
	}
	c->bev = c->plain;
	c->state = CLIENT_CONNECTING;
	bufferevent_setcb(c->plain, client_on_read, client_on_write, client_on_event, c);
	struct timeval ct = client_tv(c->p.connect_timeout);
	bufferevent_set_timeouts(c->plain, &ct, &ct);
	bufferevent_enable(c->plain, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->plain, params->addr, (int)params->addrlen) < 0) {
		/* reported like any connection failure, later, through done */
		client_free(c);
		if (asprintf(error_r, "connect: %s", strerror(errno)) < 0)
			*error_r = NULL;
		return -1;
	}
	*c_r = c;
	return 1;
}

void smtp_client_cancel(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;
	if (c == NULL)
		return;
	*cp = NULL;
	c->finished = true;
	if (c->bev != NULL) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	if (c->reading) {
		c->cancelled = true;
		return;
	}
	client_free(c);
}
