/* Unit tests for the line-session layer (src/net/line_session.c) over a socketpair
 * with a real event loop and no server: line splits and ends, overlong lines, RAW
 * after a line, back-pressure, idle and command timeouts, the overall deadline,
 * half-close, park/unpark with pipelined input, error counting and a failed TLS
 * set-up. Timeouts are short and the tests wait for the event, never assert on
 * durations. */
#include "unit.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "core/dict.h"
#include "core/log.h"
#include "net/line_session.h"
#include "net/server.h"

#define MAX_LINES 512

struct t_proto {
	struct line_session *ls;
	struct conn *c;
	char *lines[MAX_LINES];
	size_t nlines;
	unsigned too_long;
	unsigned raw_ends;
	unsigned drains; /* on_drain calls */
	bool in_line;    /* inside on_line */
	char data[4096];
	size_t ndata;
	size_t reply_size; /* each line gets "OK <line>" padded to this size */
	bool freed;
};

/* libevent's allocations go through these (event_set_mem_functions): a block it
 * frees is searched for t_secret, so that a test sees a copy of a secret line
 * that a buffer chain took back to the allocator. */
static const char *t_secret;
static unsigned t_secret_freed; /* blocks freed holding t_secret */

static void *t_mm_malloc(size_t n)
{
	return malloc(n);
}

static void t_mm_free(void *ptr)
{
	if (ptr != NULL && t_secret != NULL &&
	    memmem(ptr, malloc_usable_size(ptr), t_secret, strlen(t_secret)) != NULL)
		t_secret_freed++;
	free(ptr);
}

/* a new block each time, so that the old one is searched as it is freed */
static void *t_mm_realloc(void *ptr, size_t n)
{
	if (ptr == NULL)
		return malloc(n);
	void *q = malloc(n);
	if (q == NULL)
		return NULL;
	size_t old = malloc_usable_size(ptr);
	memcpy(q, ptr, old < n ? old : n);
	t_mm_free(ptr);
	return q;
}

static struct event_base *base;
static struct server srv;
static struct loop tloop;
static int peer = -1;

/* The server would free reaped conns here; the test frees its one in t_end,
 * after it has looked at it. */
static void t_reap(evutil_socket_t fd, short what, void *arg)
{
	tloop.reap = NULL;
}

static void t_proto_free(struct conn *c)
{
	struct t_proto *p = c->proto_data;
	line_session_free(&p->ls);
	p->freed = true;
}

static const struct proto_ops t_ops_conn = {.name = "test", .free = t_proto_free};

static void t_on_line(void *ctx, char *line, size_t len)
{
	struct t_proto *p = ctx;
	CHECK(strlen(line) == len);
	if (p->nlines < MAX_LINES)
		p->lines[p->nlines++] = strdup(line);
	unsigned long n;
	if (sscanf(line, "RAW %lu", &n) == 1) {
		line_session_want_raw(p->ls, n);
	} else if (strcmp(line, "PARK") == 0) {
		line_session_park(p->ls);
	} else if (strcmp(line, "BAD") == 0) {
		line_session_error(p->ls, "ERR %s", line);
		return;
	} else if (strcmp(line, "QUIT") == 0) {
		line_session_goodbye(p->ls, "BYE");
		return;
	} else if (strcmp(line, "STREAM") == 0) {
		/* a long reply fed as the peer reads: 64 KiB now, the rest on drain */
		line_session_park(p->ls);
		char *big = calloc(1, 65536);
		evbuffer_add(line_session_output(p->ls), big, 65536);
		free(big);
		p->in_line = true;
		line_session_notify_drain(p->ls, 4096);
		p->in_line = false;
		return;
	} else if (strcmp(line, "NOTIFY") == 0) {
		p->in_line = true;
		line_session_notify_drain(p->ls, 1 << 20); /* already below: from the loop */
		p->in_line = false;
	} else if (strcmp(line, "DEADLINE") == 0) {
		line_session_set_deadline(p->ls, 1);
	} else if (strcmp(line, "COMPRESS") == 0) {
		line_session_reply(p->ls, "OK compress");
		CHECK(line_session_start_compress(p->ls) == 1);
		CHECK(line_session_start_compress(p->ls) == -1); /* once only */
		return;
	}
	if (p->reply_size > 0) {
		char *big = malloc(p->reply_size);
		memset(big, 'r', p->reply_size);
		evbuffer_add(line_session_output(p->ls), big, p->reply_size);
		free(big);
		line_session_reply(p->ls, "%s", "");
	} else if (strncmp(line, "PASS ", 5) == 0 || strncmp(line, "AUTH ", 5) == 0) {
		line_session_reply(p->ls, "OK secret"); /* not echoed */
	} else {
		line_session_reply(p->ls, "OK %s", line);
	}
}

static void t_on_too_long(void *ctx)
{
	struct t_proto *p = ctx;
	p->too_long++;
	line_session_error(p->ls, "ERR line too long");
}

static long t_on_data(void *ctx, const char *data, size_t len)
{
	struct t_proto *p = ctx;
	if (p->ndata + len > sizeof(p->data))
		len = sizeof(p->data) - p->ndata;
	memcpy(p->data + p->ndata, data, len);
	p->ndata += len;
	return (long)len;
}

static void t_on_raw_end(void *ctx)
{
	struct t_proto *p = ctx;
	p->raw_ends++;
	line_session_reply(p->ls, "OK raw %zu", p->ndata);
}

static void t_on_drain(void *ctx)
{
	struct t_proto *p = ctx;
	CHECK(!p->in_line); /* never from inside notify_drain */
	CHECK(conn_output_pending(p->c) <= 1 << 20);
	if (p->drains == 0 && p->nlines > 1)
		CHECK(conn_output_pending(p->c) <= 4096); /* STREAM's level */
	p->drains++;
}

static const char *t_state(void *ctx)
{
	return "test";
}

static const struct line_session_ops t_ops = {
    .on_line = t_on_line,
    .on_line_too_long = t_on_too_long,
    .on_data = t_on_data,
    .on_raw_end = t_on_raw_end,
    .state_name = t_state,
    .on_drain = t_on_drain,
    .timeout_reply = "TIMEOUT",
    .too_many_errors = "TOO MANY",
};

/* "AUTH " lines may be 200 octets (as SMTP's AUTH initial response). */
static size_t t_line_max_for(void *ctx, const char *start, size_t len)
{
	return len >= 5 && memcmp(start, "AUTH ", 5) == 0 ? 200 : 0;
}

static const struct line_session_ops t_ops_auth = {
    .on_line = t_on_line,
    .on_line_too_long = t_on_too_long,
    .line_max_for = t_line_max_for,
    .on_data = t_on_data,
    .on_raw_end = t_on_raw_end,
    .state_name = t_state,
    .on_drain = t_on_drain,
    .timeout_reply = "TIMEOUT",
    .too_many_errors = "TOO MANY",
};

static struct line_session_limits t_limits(void)
{
	return (struct line_session_limits){
	    .line_max = 64,
	    .idle_timeout = 100,
	    .command_timeout = 100,
	    .data_timeout = 100,
	    .max_errors = 3,
	    .input_high = 4096,
	    .output_high = 16384,
	    .output_low = 4096,
	};
}

/* A session on one end of a socketpair; the test talks on the other (peer). */
static struct t_proto *t_start_ssl(const struct line_session_limits *lim,
                                   const struct line_session_ops *ops, SSL *ssl)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	int small = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	evutil_make_socket_nonblocking(sv[0]);
	peer = sv[1];
	struct conn *c = calloc(1, sizeof(*c));
	struct t_proto *p = calloc(1, sizeof(*p));
	c->srv = &srv;
	c->loop = &tloop;
	c->proto = &t_ops_conn;
	c->proto_data = p;
	snprintf(c->sid, sizeof(c->sid), "test");
	snprintf(c->ip, sizeof(c->ip), "127.0.0.1");
	c->bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	c->ssl = ssl; /* looked at, not used: the socket stays plain */
	tloop.conns = c;
	srv.nconns = 1;
	atomic_store(&tloop.nconns, 1);
	p->c = c;
	p->ls = line_session_new(c, ops, p, lim);
	CHECK(p->ls != NULL);
	return p;
}

static struct t_proto *t_start_ops(const struct line_session_limits *lim,
                                   const struct line_session_ops *ops)
{
	return t_start_ssl(lim, ops, NULL);
}

static struct t_proto *t_start(const struct line_session_limits *lim)
{
	return t_start_ops(lim, &t_ops);
}

static void t_end(struct t_proto *p)
{
	if (!conn_is_dead(p->c))
		conn_close(p->c);
	event_base_loop(base, EVLOOP_NONBLOCK);
	CHECK(p->c->reap_queued);
	p->c->proto->free(p->c);
	if (p->c->ev_close != NULL) /* as conn_free does (a goodbye under a filter) */
		event_free(p->c->ev_close);
	free(p->c);
	CHECK(p->freed);
	for (size_t i = 0; i < p->nlines; i++)
		free(p->lines[i]);
	free(p);
	close(peer);
	peer = -1;
}

/* Runs the loop for about ms milliseconds, or until cond(p) holds. */
static void t_pump(struct t_proto *p, int ms, bool (*cond)(struct t_proto *))
{
	for (int i = 0; i < ms / 10; i++) {
		if (cond != NULL && cond(p))
			return;
		struct timeval tv = {.tv_usec = 10000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static bool t_dead(struct t_proto *p)
{
	return conn_is_dead(p->c);
}

static void t_send(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t w = write(peer, s, len);
		if (w < 0 && errno == EINTR)
			continue;
		CHECK(w > 0);
		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

/* Everything the peer can read now (after pumping the loop a little). */
static size_t t_read_all(struct t_proto *p, char *out, size_t outsz)
{
	size_t n = 0;
	for (int round = 0; round < 50; round++) {
		t_pump(p, 20, NULL);
		struct pollfd pfd = {.fd = peer, .events = POLLIN};
		while (n + 1 < outsz && poll(&pfd, 1, 0) == 1) {
			/* MSG_PEEK first: an EOF stays readable for t_peer_eof */
			char b;
			if (recv(peer, &b, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
				goto done;
			ssize_t r = read(peer, out + n, outsz - 1 - n);
			if (r <= 0)
				goto done;
			n += (size_t)r;
		}
		if (round > 3 && poll(&pfd, 1, 0) == 0)
			break;
	}
done:
	out[n] = '\0';
	return n;
}

/* 1 when the peer reads EOF. */
static bool t_peer_eof(void)
{
	char b[256];
	int fl = fcntl(peer, F_GETFL);
	fcntl(peer, F_SETFL, fl | O_NONBLOCK);
	ssize_t r;
	while ((r = read(peer, b, sizeof(b))) > 0)
		;
	fcntl(peer, F_SETFL, fl);
	return r == 0;
}

/* ---- tests ---- */

static void test_byte_splits(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	static const char in[] = "HELO a\r\nNOOP\nQUIT now\r\n";
	for (size_t i = 0; i < sizeof(in) - 1; i++) {
		t_send(in + i, 1);
		t_pump(p, 20, NULL);
	}
	CHECK(p->nlines == 3);
	if (p->nlines == 3) {
		CHECK_STR(p->lines[0], "HELO a"); /* CRLF */
		CHECK_STR(p->lines[1], "NOOP");   /* bare LF */
		CHECK_STR(p->lines[2], "QUIT now");
	}
	char out[256];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "OK HELO a\r\nOK NOOP\r\nOK QUIT now\r\n");
	t_end(p);
}

static bool t_two_lines(struct t_proto *p)
{
	return p->nlines >= 2;
}

static void test_overlong_line(void)
{
	struct line_session_limits lim = t_limits(); /* 64 with the line end */
	lim.max_errors = 10;
	struct t_proto *p = t_start(&lim);
	/* 62 + CRLF fits exactly; 63 + CRLF does not; bare LF counts as CRLF */
	char ok[70], bad[70], badlf[70];
	memset(ok, 'a', 62);
	memcpy(ok + 62, "\r\n", 3);
	memset(bad, 'b', 63);
	memcpy(bad + 63, "\r\n", 3);
	memset(badlf, 'c', 63);
	memcpy(badlf + 63, "\n", 2);
	t_send(ok, strlen(ok));
	t_send(bad, strlen(bad));
	t_send(badlf, strlen(badlf));
	/* a long line arriving in pieces is not buffered whole */
	char chunk[1000];
	memset(chunk, 'd', sizeof(chunk));
	for (int i = 0; i < 20; i++) {
		t_send(chunk, sizeof(chunk));
		t_pump(p, 10, NULL);
		CHECK(evbuffer_get_length(bufferevent_get_input(p->c->bev)) <= lim.input_high);
	}
	CHECK(line_session_discarding(p->ls));
	CHECK(p->too_long == 2); /* the open one is reported once it ends */
	t_send("\r\nNEXT\r\n", 8);
	t_pump(p, 200, t_two_lines);
	CHECK(p->too_long == 3);
	CHECK(p->nlines == 2);
	if (p->nlines == 2) {
		CHECK(strlen(p->lines[0]) == 62);
		CHECK_STR(p->lines[1], "NEXT");
	}
	t_end(p);
}

static bool t_four_lines(struct t_proto *p)
{
	return p->nlines + p->too_long >= 4;
}

/* The protocol's longer limit for a line (line_max_for) applies the same with a
 * bare LF ending (counted as CRLF) as with CRLF, at every length. */
static void test_line_max_for(void)
{
	struct line_session_limits lim = t_limits(); /* 64 with the line end */
	lim.max_errors = 10;
	struct t_proto *p = t_start_ops(&lim, &t_ops_auth);
	char in[1024];
	size_t n = 0;
	/* 63 octets + LF counts 65: over line_max, within the AUTH limit */
	memcpy(in + n, "AUTH ", 5);
	memset(in + n + 5, 'a', 58);
	memcpy(in + n + 63, "\n", 1);
	n += 64;
	/* 198 + CRLF: exactly the AUTH limit */
	memcpy(in + n, "AUTH ", 5);
	memset(in + n + 5, 'b', 193);
	memcpy(in + n + 198, "\r\n", 2);
	n += 200;
	/* 198 + LF counts 200 too; 199 + LF counts 201: over */
	memcpy(in + n, "AUTH ", 5);
	memset(in + n + 5, 'c', 193);
	memcpy(in + n + 198, "\n", 1);
	n += 199;
	memcpy(in + n, "AUTH ", 5);
	memset(in + n + 5, 'd', 194);
	memcpy(in + n + 199, "\n", 1);
	n += 200;
	/* any other line keeps line_max */
	memset(in + n, 'e', 63);
	memcpy(in + n + 63, "\n", 1);
	n += 64;
	t_send(in, n);
	t_pump(p, 500, t_four_lines);
	t_pump(p, 50, NULL);
	CHECK(p->nlines == 3);
	CHECK(p->too_long == 2);
	if (p->nlines == 3) {
		CHECK(strlen(p->lines[0]) == 63 && p->lines[0][62] == 'a');
		CHECK(strlen(p->lines[1]) == 198 && p->lines[1][197] == 'b');
		CHECK(strlen(p->lines[2]) == 198 && p->lines[2][197] == 'c');
	}
	t_end(p);
}

/* The wipe itself: the octets are overwritten where they lie, across chains, and
 * the rest of the buffer is left as it was. The chains reference the test's
 * memory, so it can be looked at after the drain. */
static void test_drain_wiped(void)
{
	char mem[] = "PASS hunter2\r\nNEXT\r\n";
	struct evbuffer *b = evbuffer_new();
	evbuffer_add_reference(b, mem, 3, NULL, NULL);
	evbuffer_add_reference(b, mem + 3, 10, NULL, NULL);
	evbuffer_add_reference(b, mem + 13, sizeof(mem) - 1 - 13, NULL, NULL);
	line_session_drain_wiped(b, 14);
	static const char zero[14];
	CHECK(memcmp(mem, zero, 14) == 0);
	CHECK(memcmp(mem + 14, "NEXT\r\n", 6) == 0);
	CHECK(evbuffer_get_length(b) == 6);
	char rest[8] = {0};
	CHECK(evbuffer_copyout(b, rest, sizeof(rest)) == 6);
	CHECK_STR(rest, "NEXT\r\n");
	/* more than is buffered: all of it */
	line_session_drain_wiped(b, 100);
	CHECK(evbuffer_get_length(b) == 0);
	CHECK(memcmp(mem + 14, zero, 6) == 0);
	line_session_drain_wiped(b, 1); /* empty: nothing to do */
	evbuffer_free(b);
}

static bool t_three_items(struct t_proto *p)
{
	return p->nlines + p->too_long >= 3;
}

/* Secret lines leave no copy behind in the input buffer's memory: not for a
 * line taken (a PASS line between two others, so that its chain stays in use),
 * not for an overlong one (an AUTH line skipped in pieces), and not for input
 * discarded at STARTTLS. Every chain libevent frees is searched (t_mm_free),
 * the last ones when the connection closes. */
static void test_secret_lines_wiped(void)
{
	/* the search itself finds a secret left in a chain */
	t_secret = "hunter2-s3cr3t";
	t_secret_freed = 0;
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, "PASS hunter2-s3cr3t\r\n", 21);
	evbuffer_drain(b, 21);
	evbuffer_free(b);
	CHECK(t_secret_freed == 1);

	t_secret_freed = 0;
	struct line_session_limits lim = t_limits(); /* 64 with the line end */
	lim.max_errors = 10;
	struct t_proto *p = t_start(&lim);
	static const char in[] = "NOOP\r\nPASS hunter2-s3cr3t\r\nNEXT\r\n";
	t_send(in, sizeof(in) - 1);
	t_pump(p, 500, t_three_items);
	CHECK(p->nlines == 3);
	if (p->nlines == 3)
		CHECK_STR(p->lines[1], "PASS hunter2-s3cr3t");
	/* 40 + 40 + 40 octets: discarded after the second piece */
	char part[41];
	memset(part, 'x', 40);
	memcpy(part, "AUTH PLAIN hunter2-s3cr3t", 25);
	t_send(part, 40);
	t_pump(p, 50, NULL);
	memcpy(part, "hunter2-s3cr3t", 14);
	t_send(part, 40);
	t_pump(p, 50, NULL);
	CHECK(line_session_discarding(p->ls));
	t_send(part, 40);
	t_send("\r\n", 2);
	t_pump(p, 200, NULL);
	CHECK(p->too_long == 1);
	/* pipelined behind a STARTTLS: thrown away (the set-up fails here) */
	t_send("AUTH PLAIN hunter2-s3cr3t\r\n", 27);
	t_pump(p, 100, NULL);
	CHECK(p->nlines == 4);
	t_send("PASS hunter2-s3cr3t\r\n", 21);
	for (int i = 0; i < 50 && evbuffer_get_length(bufferevent_get_input(p->c->bev)) < 21; i++) {
		/* read into the buffer without taking the line: parked */
		line_session_park(p->ls);
		t_pump(p, 20, NULL);
	}
	CHECK(evbuffer_get_length(bufferevent_get_input(p->c->bev)) == 21);
	CHECK(line_session_start_tls(p->ls) == -1);
	t_end(p);
	CHECK(t_secret_freed == 0);
	t_secret = NULL;
}

/* Under TLS, OpenSSL is told to cleanse its copy of what it decrypted. */
static void test_tls_cleanse_plaintext(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
	CHECK(ssl != NULL);
	if (ssl == NULL) {
		SSL_CTX_free(ctx);
		return;
	}
	CHECK((SSL_get_options(ssl) & SSL_OP_CLEANSE_PLAINTEXT) == 0);
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start_ssl(&lim, &t_ops, ssl);
	CHECK((SSL_get_options(ssl) & SSL_OP_CLEANSE_PLAINTEXT) != 0);
	p->c->ssl = NULL; /* the plain socket does not own it */
	t_end(p);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

static bool t_next_seen(struct t_proto *p)
{
	return p->nlines >= 3;
}

static void test_raw_after_line(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	/* the chunk holds a CRLF and would-be commands: they are data */
	static const char in[] = "RAW 12\r\nab\r\nQUIT\r\ncdNEXT\r\nRAW 0\r\nLAST\r\n";
	t_send(in, sizeof(in) - 1);
	t_pump(p, 500, t_next_seen);
	CHECK(p->ndata == 12 && memcmp(p->data, "ab\r\nQUIT\r\ncd", 12) == 0);
	CHECK(p->nlines >= 3);
	t_pump(p, 100, NULL);
	CHECK(p->raw_ends == 2);
	CHECK(p->nlines == 4);
	if (p->nlines == 4) {
		CHECK_STR(p->lines[0], "RAW 12");
		CHECK_STR(p->lines[1], "NEXT");
		CHECK_STR(p->lines[2], "RAW 0");
		CHECK_STR(p->lines[3], "LAST");
	}
	char out[512];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "OK RAW 12\r\nOK raw 12\r\nOK NEXT\r\nOK RAW 0\r\nOK raw 12\r\nOK LAST\r\n");
	t_end(p);
}

static void test_backpressure(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	p->reply_size = 8192;
	enum { N = 300 };
	char in[N * 4];
	for (int i = 0; i < N; i++)
		memcpy(in + 4 * i, "NO\r\n", 4);
	/* the peer sends everything and reads nothing: the session stops taking
	 * input once its output is over output_high, and input buffering stops at
	 * input_high (the rest waits in the socket) */
	size_t sent = 0;
	int fl = fcntl(peer, F_GETFL);
	fcntl(peer, F_SETFL, fl | O_NONBLOCK);
	for (int round = 0; round < 50 && sent < sizeof(in); round++) {
		ssize_t w = write(peer, in + sent, sizeof(in) - sent);
		if (w > 0)
			sent += (size_t)w;
		t_pump(p, 20, NULL);
	}
	fcntl(peer, F_SETFL, fl);
	t_pump(p, 200, NULL);
	size_t stalled = p->nlines;
	CHECK(stalled < N);
	CHECK(conn_output_pending(p->c) <= lim.output_high + p->reply_size + 2);
	CHECK(evbuffer_get_length(bufferevent_get_input(p->c->bev)) <= lim.input_high);
	t_pump(p, 200, NULL);
	CHECK(p->nlines == stalled); /* nothing moves while the peer reads nothing */
	/* the peer reads: everything gets processed and answered */
	size_t got = 0;
	char buf[65536];
	fcntl(peer, F_SETFL, fl | O_NONBLOCK);
	for (int round = 0; round < 2000 && got < (size_t)N * 8194; round++) {
		if (sent < sizeof(in)) {
			ssize_t w = write(peer, in + sent, sizeof(in) - sent);
			if (w > 0)
				sent += (size_t)w;
		}
		ssize_t r;
		while ((r = read(peer, buf, sizeof(buf))) > 0)
			got += (size_t)r;
		t_pump(p, 10, NULL);
	}
	fcntl(peer, F_SETFL, fl);
	CHECK(p->nlines == N);
	CHECK(got == (size_t)N * 8194);
	t_end(p);
}

static void test_idle_timeout(void)
{
	struct line_session_limits lim = t_limits();
	lim.idle_timeout = 1;
	struct t_proto *p = t_start(&lim);
	t_pump(p, 5000, t_dead);
	CHECK(conn_is_dead(p->c));
	char out[64];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "TIMEOUT\r\n");
	t_end(p);
}

static void test_command_timeout(void)
{
	struct line_session_limits lim = t_limits();
	lim.command_timeout = 1; /* idle stays at 100 s: only the command timer can fire */
	struct t_proto *p = t_start(&lim);
	t_send("NOOP\r\nHALF", 10);
	/* more bytes of the started line do not restart the timer */
	for (int i = 0; i < 40 && !conn_is_dead(p->c); i++) {
		t_send("x", 1);
		t_pump(p, 100, t_dead);
	}
	CHECK(conn_is_dead(p->c));
	CHECK(p->nlines == 1);
	char out[64];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "OK NOOP\r\nTIMEOUT\r\n");
	t_end(p);
}

static void test_deadline(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	t_send("DEADLINE\r\nRAW 100\r\n", 19);
	/* bytes keep coming, so the data timer never fires; the deadline does */
	for (int i = 0; i < 40 && !conn_is_dead(p->c); i++) {
		t_send("y", 1);
		t_pump(p, 100, t_dead);
	}
	CHECK(conn_is_dead(p->c));
	char out[128];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "OK DEADLINE\r\nOK RAW 100\r\nTIMEOUT\r\n");
	t_end(p);
}

static void test_half_close(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	t_send("A\r\nB\r\n", 6);
	shutdown(peer, SHUT_WR);
	t_pump(p, 1000, t_dead);
	CHECK(conn_is_dead(p->c));
	char out[64];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "OK A\r\nOK B\r\n");
	CHECK(t_peer_eof());
	t_end(p);
}

static void test_park_unpark(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	t_send("PARK\r\nX\r\nY\r\n", 12);
	t_pump(p, 200, NULL);
	CHECK(p->nlines == 1);
	CHECK(line_session_parked(p->ls));
	/* the job is done: what was pipelined is taken, in order */
	line_session_unpark(p->ls);
	CHECK(p->nlines == 3);
	if (p->nlines == 3) {
		CHECK_STR(p->lines[1], "X");
		CHECK_STR(p->lines[2], "Y");
	}
	/* half-close while parked: the replies still come once unparked */
	t_send("PARK\r\nZ\r\n", 9);
	shutdown(peer, SHUT_WR);
	t_pump(p, 200, NULL);
	CHECK(!conn_is_dead(p->c));
	CHECK(p->nlines == 4);
	line_session_unpark(p->ls);
	t_pump(p, 500, t_dead);
	CHECK(p->nlines == 5);
	char out[256];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "OK PARK\r\nOK X\r\nOK Y\r\nOK PARK\r\nOK Z\r\n");
	CHECK(t_peer_eof());
	t_end(p);
}

static void test_max_errors(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	t_send("BAD\r\nBAD\r\nBAD\r\nNOOP\r\n", 20);
	t_pump(p, 500, t_dead);
	CHECK(conn_is_dead(p->c));
	CHECK(p->nlines == 3);
	char out[128];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "ERR BAD\r\nERR BAD\r\nERR BAD\r\nTOO MANY\r\n");
	t_end(p);
}

static void test_goodbye(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	t_send("QUIT\r\nNOOP\r\n", 12);
	t_pump(p, 500, t_dead);
	CHECK(conn_is_dead(p->c));
	CHECK(p->nlines == 1);
	char out[64];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "BYE\r\n");
	CHECK(t_peer_eof());
	t_end(p);
}

static int t_count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* A TLS set-up that fails ends the session: the socket is closed (no fd left
 * behind) and the protocol's state stays valid until it is freed. */
static void test_start_tls_failure(void)
{
	int before = t_count_fds();
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim); /* tloop.tls is NULL: conn_start_tls fails */
	t_send("JUNK\r\n", 6);
	t_pump(p, 50, NULL);
	CHECK(line_session_start_tls(p->ls) == -1);
	CHECK(conn_is_dead(p->c));
	CHECK(line_session_gone(p->ls));
	line_session_reply(p->ls, "NOT SENT"); /* harmless once gone */
	t_pump(p, 50, NULL);
	char out[64];
	t_read_all(p, out, sizeof(out));
	CHECK_STR(out, "OK JUNK\r\n");
	CHECK(t_peer_eof());
	t_end(p);
	CHECK(t_count_fds() == before);
}

static bool t_drained(struct t_proto *p)
{
	return p->drains > 0;
}

/* notify_drain: on_drain comes once the peer has read the output down to the
 * level, once per call, never from inside the call. */
static void test_notify_drain(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	t_send("NOTIFY\r\n", 8);
	t_pump(p, 500, t_drained);
	CHECK(p->drains == 1);
	char buf[65536];
	t_read_all(p, buf, sizeof(buf));
	p->drains = 0;
	t_send("STREAM\r\n", 8);
	t_pump(p, 300, NULL); /* the peer reads nothing: no drain */
	CHECK(p->drains == 0);
	CHECK(conn_output_pending(p->c) > 4096);
	size_t got = 0;
	int fl = fcntl(peer, F_GETFL);
	fcntl(peer, F_SETFL, fl | O_NONBLOCK);
	for (int round = 0; round < 500 && p->drains == 0; round++) {
		ssize_t r;
		while ((r = read(peer, buf, sizeof(buf))) > 0)
			got += (size_t)r;
		t_pump(p, 10, NULL);
	}
	fcntl(peer, F_SETFL, fl);
	CHECK(p->drains == 1);
	CHECK(got > 0);
	t_pump(p, 100, NULL);
	CHECK(p->drains == 1); /* once per call */
	t_end(p);
}

/* ---- COMPRESS=DEFLATE ---- */

static z_stream t_zin, t_zout;

static void t_z_begin(void)
{
	memset(&t_zin, 0, sizeof(t_zin));
	memset(&t_zout, 0, sizeof(t_zout));
	CHECK(inflateInit2(&t_zin, -15) == Z_OK);
	CHECK(deflateInit2(&t_zout, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
}

static void t_z_end(void)
{
	inflateEnd(&t_zin);
	deflateEnd(&t_zout);
}

/* Deflates s with a sync flush, as a client would send a command. */
static size_t t_z_deflate(const char *s, size_t len, unsigned char *out, size_t outsz)
{
	t_zout.next_in = (unsigned char *)s;
	t_zout.avail_in = (uInt)len;
	t_zout.next_out = out;
	t_zout.avail_out = (uInt)outsz;
	CHECK(deflate(&t_zout, Z_SYNC_FLUSH) == Z_OK);
	CHECK(t_zout.avail_in == 0);
	return outsz - t_zout.avail_out;
}

/* Inflates what the peer read. */
static size_t t_z_inflate(const char *in, size_t len, char *out, size_t outsz)
{
	t_zin.next_in = (unsigned char *)in;
	t_zin.avail_in = (uInt)len;
	t_zin.next_out = (unsigned char *)out;
	t_zin.avail_out = (uInt)outsz - 1;
	int r = inflate(&t_zin, Z_SYNC_FLUSH);
	CHECK(r == Z_OK || (r == Z_BUF_ERROR && len == 0));
	size_t n = outsz - 1 - t_zin.avail_out;
	out[n] = '\0';
	return n;
}

static bool t_one_more_line(struct t_proto *p)
{
	return p->nlines >= 3;
}

static void test_compress(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	static char raw[65536], text[65536];
	static unsigned char z[65536];
	t_z_begin();
	/* the command, and a compressed command pipelined right behind it */
	size_t zn = t_z_deflate("NOOP\r\n", 6, z, sizeof(z));
	char first[128];
	memcpy(first, "COMPRESS\r\n", 10);
	memcpy(first + 10, z, zn);
	t_send(first, 10 + zn);
	size_t n = t_read_all(p, raw, sizeof(raw));
	/* the OK goes out as it is, then compressed data only */
	CHECK(n > 13 && memcmp(raw, "OK compress\r\n", 13) == 0);
	t_z_inflate(raw + 13, n - 13, text, sizeof(text));
	CHECK_STR(text, "OK NOOP\r\n");
	CHECK(p->nlines == 2 && strcmp(p->lines[1], "NOOP") == 0);
	/* several commands split at every byte: one reply stream */
	zn = t_z_deflate("A\r\nB\r\n", 6, z, sizeof(z));
	for (size_t i = 0; i < zn; i++) {
		t_send((const char *)z + i, 1);
		t_pump(p, 10, NULL);
	}
	n = t_read_all(p, raw, sizeof(raw));
	t_z_inflate(raw, n, text, sizeof(text));
	CHECK_STR(text, "OK A\r\nOK B\r\n");
	/* a large reply comes through whole */
	p->reply_size = 30000;
	zn = t_z_deflate("BIG\r\n", 5, z, sizeof(z));
	t_send((const char *)z, zn);
	size_t got = 0;
	for (int round = 0; round < 20 && got < 30002; round++) {
		n = t_read_all(p, raw, sizeof(raw));
		got += t_z_inflate(raw, n, text, sizeof(text));
	}
	CHECK(got == 30002);
	p->reply_size = 0;
	/* the goodbye is flushed out of zlib before the close */
	zn = t_z_deflate("QUIT\r\n", 6, z, sizeof(z));
	t_send((const char *)z, zn);
	t_pump(p, 500, t_dead);
	n = t_read_all(p, raw, sizeof(raw));
	t_z_inflate(raw, n, text, sizeof(text));
	CHECK_STR(text, "BYE\r\n");
	CHECK(t_dead(p));
	CHECK(t_peer_eof());
	t_z_end();
	t_end(p);
}

/* A small input that inflates to a lot (a "zip bomb" line) is inflated no
 * faster than the session reads: the overlong line is discarded piece by piece
 * with the input buffer at its limit, and the session goes on. */
static void test_compress_bomb(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	static char raw[65536], text[65536];
	static unsigned char z[1 << 20];
	t_z_begin();
	t_send("COMPRESS\r\n", 10);
	size_t n = t_read_all(p, raw, sizeof(raw));
	CHECK(n >= 13 && memcmp(raw, "OK compress\r\n", 13) == 0);
	char *big = malloc(8u << 20);
	memset(big, 'x', 8u << 20);
	size_t zn = t_z_deflate(big, 8u << 20, z, sizeof(z));
	free(big);
	CHECK(zn < 65536);
	zn += t_z_deflate("\r\nAFTER\r\n", 9, z + zn, sizeof(z) - zn);
	t_send((const char *)z, zn);
	size_t most = 0;
	for (int i = 0; i < 400 && !t_one_more_line(p); i++) {
		t_pump(p, 10, NULL);
		size_t have = evbuffer_get_length(bufferevent_get_input(p->c->bev));
		if (have > most)
			most = have;
	}
	CHECK(p->too_long == 1);
	CHECK(most <= lim.input_high + 16384);
	CHECK(p->nlines == 2 && strcmp(p->lines[1], "AFTER") == 0);
	n = t_read_all(p, raw, sizeof(raw));
	t_z_inflate(raw, n, text, sizeof(text));
	CHECK(strstr(text, "OK AFTER\r\n") != NULL);
	t_z_end();
	t_end(p);
}

/* Input that is not DEFLATE data ends the connection. */
static void test_compress_corrupt(void)
{
	struct line_session_limits lim = t_limits();
	struct t_proto *p = t_start(&lim);
	char raw[256];
	t_send("COMPRESS\r\n", 10);
	size_t n = t_read_all(p, raw, sizeof(raw));
	CHECK(n >= 13 && memcmp(raw, "OK compress\r\n", 13) == 0);
	static const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x01, 0x02};
	t_send((const char *)junk, sizeof(junk));
	t_pump(p, 500, t_dead);
	CHECK(t_dead(p));
	t_end(p);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	event_set_mem_functions(t_mm_malloc, t_mm_realloc, t_mm_free); /* before any other call */
	base = event_base_new();
	tloop.base = base;
	tloop.srv = &srv;
	pthread_mutex_init(&srv.count_lock, NULL);
	srv.ip_counts = dict_new(sizeof(unsigned), 16, DICT_NO_EVICT);
	tloop.ev_reap = event_new(base, -1, 0, t_reap, NULL);
	test_byte_splits();
	test_overlong_line();
	test_line_max_for();
	test_drain_wiped();
	test_secret_lines_wiped();
	test_tls_cleanse_plaintext();
	test_raw_after_line();
	test_backpressure();
	test_notify_drain();
	test_idle_timeout();
	test_command_timeout();
	test_deadline();
	test_half_close();
	test_park_unpark();
	test_max_errors();
	test_goodbye();
	test_start_tls_failure();
	test_compress();
	test_compress_bomb();
	test_compress_corrupt();
	event_free(tloop.ev_reap);
	dict_free(&srv.ip_counts);
	event_base_free(base);
	return unit_finish("line_session");
}
