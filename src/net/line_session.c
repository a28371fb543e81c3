/* The line-session layer (see line_session.h). */
#include "net/line_session.h"

#include <errno.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "net/server.h"
#include "net/zfilter.h"

struct line_session {
	struct conn *c;
	const struct line_session_ops *ops;
	void *ctx;
	struct line_session_limits lim;
	struct line_session_reader rd; /* mode, RAW count, line limit, discard state */
	unsigned errors;
	bool parked;     /* async work running: input waits */
	bool blocked;    /* too much output unsent: input waits */
	bool peer_eof;   /* the peer closed its sending side */
	bool closed;     /* goodbye sent or connection closed by us */
	bool in_process; /* inside ls_process (no re-entry) */
	bool want_drain; /* call ops->on_drain once output is down to drain_low */
	size_t drain_low;
	struct event *t_input;     /* idle (LINES) or data (RAW/BODY) inactivity */
	struct event *t_cmd;       /* a started line must complete */
	struct event *t_write;     /* output pending without progress */
	struct event *t_deadline;  /* the protocol's overall deadline */
	struct event *ev_wake;     /* output drained: resume from the loop */
	struct event *ev_flush;    /* direct mode: write what this loop pass added */
	bool direct;               /* plain socket: output written by ls_on_flush */
	bool flush_pending;        /* ev_flush is active */
	int64_t last_write_ms;     /* last progress of the socket output (server_now_ms) */
	struct evbuffer *sock_out; /* output at the socket (under a TLS filter) */
	struct evbuffer_cb_entry *sock_out_cb;
};

static void ls_process(struct line_session *ls);
static void ls_install(struct line_session *ls);

static const char *ls_state(const struct line_session *ls)
{
	return ls->ops->state_name != NULL ? ls->ops->state_name(ls->ctx) : "?";
}

bool line_session_gone(const struct line_session *ls)
{
	return ls->closed || conn_is_dead(ls->c) || ls->c->closing;
}

/* ---- timers ---- */

static void ls_timer_set(struct event *ev, unsigned seconds)
{
	struct timeval tv = {.tv_sec = seconds};
	event_add(ev, &tv);
}

/* Re-arms the timers for the current state; called after every step. The input
 * timer restarts each time (inactivity); the command timer runs from the first
 * byte of a line and is not restarted by more bytes. */
static void ls_timers_update(struct line_session *ls)
{
	struct conn *c = ls->c;
	if (conn_is_dead(c)) {
		event_del(ls->t_input);
		event_del(ls->t_cmd);
		event_del(ls->t_write);
		event_del(ls->t_deadline);
		return;
	}
	bool waiting = !line_session_gone(ls) && !ls->parked && !ls->blocked && !ls->peer_eof;
	bool partial = false;
	if (waiting && ls->rd.mode == LINE_SESSION_LINES)
		partial =
		    ls->rd.discarding || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
	if (waiting && !partial)
		ls_timer_set(ls->t_input, ls->rd.mode == LINE_SESSION_LINES ? ls->lim.idle_timeout
		                                                            : ls->lim.data_timeout);
	else
		event_del(ls->t_input);
	if (waiting && partial) {
		if (!event_pending(ls->t_cmd, EV_TIMEOUT, NULL))
			ls_timer_set(ls->t_cmd, ls->lim.command_timeout);
	} else {
		event_del(ls->t_cmd);
	}
	/* the write timer is restarted by progress (ls_on_sock_out); here it is only
	 * started when output is pending and it is not running */
	if (conn_output_pending(c) > 0) {
		if (!event_pending(ls->t_write, EV_TIMEOUT, NULL)) {
			ls->last_write_ms = server_now_ms();
			ls_timer_set(ls->t_write, ls->lim.data_timeout);
		}
	} else {
		event_del(ls->t_write);
	}
}

static void ls_on_input_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct line_session *ls = arg;
	log_info(ls->c->sid, "event=timeout state=%s", ls_state(ls));
	line_session_goodbye(ls, ls->ops->timeout_reply);
}

static void ls_on_cmd_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct line_session *ls = arg;
	log_info(ls->c->sid, "event=timeout state=command-line");
	line_session_goodbye(ls, ls->ops->timeout_reply);
}

static void ls_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct line_session *ls = arg;
	log_info(ls->c->sid, "event=timeout state=%s reason=deadline", ls_state(ls));
	line_session_goodbye(ls, ls->ops->timeout_reply);
}

static void ls_close(struct line_session *ls)
{
	ls->closed = true;
	if (ls->ops->on_close != NULL)
		ls->ops->on_close(ls->ctx);
	conn_close(ls->c);
	ls_timers_update(ls);
}

/* The peer reads nothing: no reply can reach it, so close (also while a
 * goodbye is flushing). */
static void ls_on_write_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct line_session *ls = arg;
	if (conn_is_dead(ls->c))
		return;
	if (conn_output_pending(ls->c) == 0)
		return;
	/* progress since the timer was set: wait for the rest of the period */
	int64_t idle = server_now_ms() - ls->last_write_ms;
	int64_t period = (int64_t)ls->lim.data_timeout * 1000;
	if (idle >= 0 && idle < period) {
		int64_t left = period - idle;
		struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
		event_add(ls->t_write, &tv);
		return;
	}
	log_info(ls->c->sid, "event=timeout state=write pending=%zu", conn_output_pending(ls->c));
	ls_close(ls);
}

/* ---- output watching ---- */

/* Runs inside buffer operations: only timers and wake-up events from here. */
static void ls_on_sock_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct line_session *ls = arg;
	if (conn_is_dead(ls->c))
		return;
	if (info->n_added > 0 && ls->direct && !ls->flush_pending) {
		/* written at the end of this loop pass, with whatever else the pass
		 * adds (the replies to pipelined commands go out together) */
		ls->flush_pending = true;
		event_active(ls->ev_flush, EV_TIMEOUT, 0);
	}
	if (info->n_deleted == 0)
		return;
	/* progress: noted here (cheap, this runs on every write), looked at when the
	 * timer fires */
	ls->last_write_ms = server_now_ms();
	if (!ls->blocked && !ls->want_drain)
		return;
	size_t pending = conn_output_pending(ls->c);
	if ((ls->blocked && pending <= ls->lim.output_low) ||
	    (ls->want_drain && pending <= ls->drain_low))
		event_active(ls->ev_wake, EV_TIMEOUT, 0);
}

/* Direct mode (a plain socket): the output a loop pass added is written here at
 * once, instead of waiting for the socket to be reported writable (which costs
 * two epoll_ctl calls and a loop pass per reply). Only what the socket does not
 * take is left to the bufferevent, whose writing is enabled until the output
 * has drained (ls_on_written). */
static void ls_on_flush(evutil_socket_t fd, short what, void *arg)
{
	struct line_session *ls = arg;
	ls->flush_pending = false;
	struct conn *c = ls->c;
	if (!ls->direct || conn_is_dead(c) || c->closing || c->bev == NULL)
		return; /* conn_finish writes (and closes) through the bufferevent */
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (evbuffer_get_length(out) == 0)
		return;
	/* the bufferevent keeps its output's start frozen except while it writes
	 * itself; do as it does */
	evbuffer_unfreeze(out, 1);
	int n = evbuffer_write(out, bufferevent_getfd(c->bev));
	int saved = errno;
	evbuffer_freeze(out, 1);
	if (n < 0 && saved != EAGAIN && saved != EWOULDBLOCK && saved != EINTR) {
		/* let the bufferevent meet the error and report it (ls_on_event) */
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
	ls_timers_update(ls);
}

/* The bufferevent wrote everything out: back to direct mode. */
static void ls_on_written(struct bufferevent *bev, void *arg)
{
	struct line_session *ls = arg;
	if (ls->direct && !conn_is_dead(ls->c) && !ls->c->closing)
		bufferevent_disable(bev, EV_WRITE);
}

static void ls_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct line_session *ls = arg;
	if (conn_is_dead(ls->c))
		return;
	if (ls->want_drain && !line_session_gone(ls) &&
	    conn_output_pending(ls->c) <= ls->drain_low) {
		ls->want_drain = false;
		ls->ops->on_drain(ls->ctx);
		if (conn_is_dead(ls->c))
			return;
	}
	if (!ls->blocked || conn_output_pending(ls->c) > ls->lim.output_low)
		return;
	ls->blocked = false;
	ls_process(ls);
}

/* ---- replies ---- */

struct evbuffer *line_session_output(struct line_session *ls)
{
	if (conn_is_dead(ls->c) || ls->c->bev == NULL)
		return NULL;
	return bufferevent_get_output(ls->c->bev);
}

struct evbuffer *line_session_input(struct line_session *ls)
{
	if (conn_is_dead(ls->c) || ls->c->bev == NULL)
		return NULL;
	return bufferevent_get_input(ls->c->bev);
}

void line_session_vreply(struct line_session *ls, const char *fmt, va_list ap)
{
	struct evbuffer *out = line_session_output(ls);
	if (out == NULL)
		return;
	evbuffer_add_vprintf(out, fmt, ap);
	evbuffer_add(out, "\r\n", 2);
}

void line_session_reply(struct line_session *ls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_session_vreply(ls, fmt, ap);
	va_end(ap);
}

void line_session_count_error(struct line_session *ls)
{
	ls->errors++;
}

void line_session_verror(struct line_session *ls, const char *fmt, va_list ap)
{
	if (conn_is_dead(ls->c))
		return;
	ls->errors++;
	line_session_vreply(ls, fmt, ap);
}

void line_session_error(struct line_session *ls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_session_verror(ls, fmt, ap);
	va_end(ap);
}

void line_session_goodbye(struct line_session *ls, const char *reply)
{
	if (line_session_gone(ls))
		return;
	line_session_reply(ls, "%s", reply);
	ls->closed = true;
	event_del(ls->t_deadline);
	conn_finish(ls->c);   /* may close at once */
	ls_timers_update(ls); /* only the write timer stays, bounding the flush */
}

void line_session_end(struct line_session *ls)
{
	if (line_session_gone(ls))
		return;
	ls->closed = true;
	event_del(ls->t_deadline);
	conn_finish(ls->c);
	ls_timers_update(ls);
}

void line_session_notify_drain(struct line_session *ls, size_t low)
{
	if (line_session_gone(ls) || ls->ops->on_drain == NULL)
		return;
	ls->want_drain = true;
	ls->drain_low = low;
	/* output was added while parked: the write timer must watch it (a peer that
	 * stops reading in the middle of a streamed reply is closed) */
	ls_timers_update(ls);
	if (conn_output_pending(ls->c) <= low)
		event_active(ls->ev_wake, EV_TIMEOUT, 0); /* from the loop, not from here */
}

/* ---- modes, park ---- */

void line_session_park(struct line_session *ls)
{
	ls->parked = true;
	ls_timers_update(ls);
}

void line_session_unpark(struct line_session *ls)
{
	ls->parked = false;
	if (!ls->in_process) /* else the running loop goes on by itself */
		ls_process(ls);
}

bool line_session_parked(const struct line_session *ls)
{
	return ls->parked;
}

void line_session_want_lines(struct line_session *ls)
{
	ls->rd.mode = LINE_SESSION_LINES;
	ls->rd.raw_left = 0;
}

void line_session_want_raw(struct line_session *ls, uint64_t n)
{
	ls->rd.mode = LINE_SESSION_RAW;
	ls->rd.raw_left = n;
}

void line_session_want_body(struct line_session *ls)
{
	ls->rd.mode = LINE_SESSION_BODY;
}

enum line_session_mode line_session_mode(const struct line_session *ls)
{
	return ls->rd.mode;
}

void line_session_set_line_max(struct line_session *ls, size_t line_max)
{
	ls->rd.line_max = line_max > LINE_SESSION_LINE_MAX ? LINE_SESSION_LINE_MAX : line_max;
}

void line_session_set_idle_timeout(struct line_session *ls, unsigned seconds)
{
	ls->lim.idle_timeout = seconds; /* applies from the next wait for a command */
}

bool line_session_discarding(const struct line_session *ls)
{
	return ls->rd.discarding;
}

bool line_session_peer_eof(const struct line_session *ls)
{
	return ls->peer_eof;
}

void line_session_set_deadline(struct line_session *ls, unsigned seconds)
{
	if (seconds == 0)
		event_del(ls->t_deadline);
	else
		ls_timer_set(ls->t_deadline, seconds);
}

/* ---- framing (line_session_reader) ---- */

void line_session_drain_wiped(struct evbuffer *in, size_t n)
{
	while (n > 0) {
		struct evbuffer_iovec v[8];
		int k = evbuffer_peek(in, (ev_ssize_t)n, NULL, v, 8);
		if (k <= 0)
			return;
		if (k > 8)
			k = 8;
		size_t done = 0;
		for (int i = 0; i < k && done < n; i++) {
			size_t m = v[i].iov_len < n - done ? v[i].iov_len : n - done;
			explicit_bzero(v[i].iov_base, m);
			done += m;
		}
		evbuffer_drain(in, done);
		n -= done;
	}
}

/* The limit of the line at the front of in, counted octets long so far (a bare LF
 * counted as CRLF), have of them buffered: line_max, or what the protocol allows
 * for this line. line holds the line when it has been copied out, else NULL. */
static size_t line_session_reader_limit(struct line_session_reader *r, struct evbuffer *in,
                                        const char *line, size_t counted, size_t have)
{
	if (counted <= r->line_max || r->line_max_for == NULL || r->discarding)
		return r->line_max;
	char start[16];
	size_t n = have < sizeof(start) ? have : sizeof(start);
	size_t max;
	if (line != NULL) {
		max = r->line_max_for(r->ctx, line, n);
	} else {
		if (evbuffer_copyout(in, start, n) != (ev_ssize_t)n)
			return r->line_max;
		max = r->line_max_for(r->ctx, start, n);
		explicit_bzero(start, n); /* the front of an AUTH initial response */
	}
	if (max == 0)
		return r->line_max;
	return max > LINE_SESSION_LINE_MAX ? LINE_SESSION_LINE_MAX : max;
}

/* Every octet of a line leaves in through line_session_drain_wiped: AUTH and PASS
 * lines hold secrets, and a drained chain goes back to the allocator as it is.
 * The protocol cannot tell a secret line before it has parsed it, and wiping a
 * command line costs as much as copying it, so every line is wiped. */
enum line_session_read line_session_reader_line(struct line_session_reader *r, struct evbuffer *in,
                                                char *line, size_t *len_r)
{
	size_t eol_len = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (p.pos < 0) {
		/* never buffer more than a line: the rest of a long one is skipped */
		size_t avail = evbuffer_get_length(in);
		if (avail > line_session_reader_limit(r, in, NULL, avail, avail)) {
			line_session_drain_wiped(in, avail);
			r->discarding = true;
		}
		return LINE_SESSION_READ_NONE;
	}
	size_t linelen = (size_t)p.pos; /* without the LF */
	size_t take = linelen + eol_len;
	/* still skipping, or longer than any limit (counted >= linelen + 1) */
	if (r->discarding || linelen + 1 > LINE_SESSION_LINE_MAX ||
	    evbuffer_copyout(in, line, take) != (ev_ssize_t)take) {
		line_session_drain_wiped(in, take);
		r->discarding = false;
		return LINE_SESSION_READ_TOO_LONG;
	}
	line_session_drain_wiped(in, take);
	/* a bare LF ending is taken, and counted as if it were CRLF; the protocol is
	 * asked by that count, so that a line ending in a bare LF gets the same limit
	 * as with CRLF */
	bool cr = linelen > 0 && line[linelen - 1] == '\r';
	size_t counted = cr ? linelen + 1 : linelen + 2;
	if (counted > line_session_reader_limit(r, in, line, counted, linelen + 1)) {
		explicit_bzero(line, take);
		return LINE_SESSION_READ_TOO_LONG;
	}
	if (cr)
		linelen--;
	line[linelen] = '\0';
	*len_r = linelen;
	return LINE_SESSION_READ_LINE;
}

size_t line_session_reader_data(const struct line_session_reader *r, struct evbuffer *in,
                                const char **data_r)
{
	bool raw = r->mode == LINE_SESSION_RAW;
	size_t want = evbuffer_get_length(in);
	if (raw && want > r->raw_left)
		want = (size_t)r->raw_left;
	if (want == 0)
		return 0;
	struct evbuffer_iovec v;
	if (evbuffer_peek(in, (ev_ssize_t)want, NULL, &v, 1) < 1)
		return 0;
	*data_r = v.iov_base;
	return v.iov_len < want ? v.iov_len : want;
}

void line_session_reader_used(struct line_session_reader *r, struct evbuffer *in,
                              enum line_session_mode mode, size_t n)
{
	evbuffer_drain(in, n);
	if (mode == LINE_SESSION_RAW)
		r->raw_left -= n <= r->raw_left ? n : r->raw_left;
}

/* ---- input ---- */

/* One line from in. Returns false when there is none complete. */
static bool ls_read_line(struct line_session *ls, struct evbuffer *in)
{
	char line[LINE_SESSION_LINE_MAX + 1];
	size_t len = 0;
	switch (line_session_reader_line(&ls->rd, in, line, &len)) {
	case LINE_SESSION_READ_NONE:
		return false;
	case LINE_SESSION_READ_TOO_LONG:
		ls->ops->on_line_too_long(ls->ctx);
		return true;
	case LINE_SESSION_READ_LINE:
		break;
	}
	ls->ops->on_line(ls->ctx, line, len);
	explicit_bzero(line, len + 2); /* the line and its line end */
	return true;
}

/* RAW or BODY bytes. Returns false when processing must stop. */
static bool ls_read_data(struct line_session *ls, struct evbuffer *in)
{
	enum line_session_mode mode = ls->rd.mode;
	if (mode == LINE_SESSION_RAW && ls->rd.raw_left == 0) {
		line_session_want_lines(ls);
		ls->ops->on_raw_end(ls->ctx);
		return true;
	}
	const char *data = NULL;
	size_t n = line_session_reader_data(&ls->rd, in, &data);
	if (n == 0)
		return false;
	long used = ls->ops->on_data(ls->ctx, data, n);
	if (used < 0)
		return false;
	if (conn_is_dead(ls->c))
		return false;
	line_session_reader_used(&ls->rd, in, mode, (size_t)used);
	/* nothing used and the mode unchanged: the protocol waits for something else */
	return used > 0 || ls->rd.mode != mode;
}

static void ls_process_input(struct line_session *ls)
{
	struct conn *c = ls->c;
	for (;;) {
		if (line_session_gone(ls) || ls->parked)
			return;
		if (conn_output_pending(c) > ls->lim.output_high) {
			/* resumed by ls_on_wake once the peer has read; input keeps buffering
			 * (bounded by the watermark) so that its EOF is seen */
			ls->blocked = true;
			return;
		}
		/* fetched each time: STARTTLS replaces the bufferevent */
		struct evbuffer *in = bufferevent_get_input(c->bev);
		bool more;
		if (ls->rd.mode == LINE_SESSION_LINES) {
			if (ls->errors >= ls->lim.max_errors && evbuffer_get_length(in) > 0) {
				log_info(c->sid, "event=too-many-errors errors=%u", ls->errors);
				line_session_goodbye(ls, ls->ops->too_many_errors);
				return;
			}
			more = ls_read_line(ls, in);
		} else {
			more = ls_read_data(ls, in);
		}
		if (!more) {
			/* under COMPRESS the rest may still be compressed below the filter
			 * (inflated only as far as the input limit allows) */
			if (c->zf != NULL && !line_session_gone(ls) && !ls->parked &&
			    zfilter_pull(c->zf) > 0)
				continue;
			return;
		}
	}
}

static void ls_process(struct line_session *ls)
{
	if (ls->in_process)
		return;
	ls->in_process = true;
	ls_process_input(ls);
	ls->in_process = false;
	/* the peer closed its side: once everything it sent has been answered, send
	 * the replies and close (a half-closing client still reads them) */
	if (ls->peer_eof && !ls->parked && !ls->blocked && !line_session_gone(ls)) {
		ls->closed = true;
		conn_finish(ls->c);
	}
	ls_timers_update(ls);
}

/* ---- bufferevent callbacks ---- */

static void ls_on_read(struct bufferevent *bev, void *arg)
{
	ls_process(arg);
}

static void ls_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct line_session *ls = arg;
	struct conn *c = ls->c;
	if (what & BEV_EVENT_CONNECTED) {
		conn_log_event(c, what, ls_state(ls));
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !ls->peer_eof) {
		/* TLS without the peer's close_notify (a dirty close): it is gone, not
		 * half-closed; nothing would read the replies */
		if (c->ssl != NULL && !(SSL_get_shutdown(c->ssl) & SSL_RECEIVED_SHUTDOWN)) {
			log_info(c->sid, "event=peer-closed state=%s tls=dirty", ls_state(ls));
			ls_close(ls);
			return;
		}
		/* keep what was pipelined before the EOF: it still gets its replies */
		ls->peer_eof = true;
		bufferevent_disable(bev, EV_READ);
		ls_process(ls);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		conn_log_event(c, what, ls_state(ls));
	ls_close(ls);
}

/* The socket-level output: the buffer under the filters (TLS, COMPRESS), else
 * the bufferevent's. */
static struct evbuffer *ls_sock_out(struct conn *c)
{
	return bufferevent_get_output(conn_bottom(c));
}

/* Callbacks, watermark and timers on the current bufferevent (again after
 * STARTTLS, which replaces it; the socket's buffer stays the same then). */
static void ls_install(struct line_session *ls)
{
	struct conn *c = ls->c;
	struct bufferevent *bev = c->bev;
	/* Direct writing on a plain socket; under TLS the filter writes. */
	ls->direct = c->ssl == NULL && bufferevent_get_underlying(bev) == NULL &&
	             ls->ev_flush != NULL;
	bufferevent_setcb(bev, ls_on_read, ls->direct ? ls_on_written : NULL, ls_on_event, ls);
	bufferevent_setwatermark(bev, EV_READ, 0, ls->lim.input_high);
	bufferevent_set_timeouts(bev, NULL, NULL); /* the timers here rule */
	/* OpenSSL keeps the plaintext of the last record in its read buffer (and
	 * SSL_MODE_RELEASE_BUFFERS frees that buffer as it is); this cleanses it once
	 * the data has been read into the input buffer, and at SSL_free */
	if (c->ssl != NULL)
		SSL_set_options(c->ssl, SSL_OP_CLEANSE_PLAINTEXT);
	struct evbuffer *out = ls_sock_out(c);
	if (out != ls->sock_out) {
		if (ls->sock_out_cb != NULL)
			evbuffer_remove_cb_entry(ls->sock_out, ls->sock_out_cb);
		ls->sock_out = out;
		ls->sock_out_cb = evbuffer_add_cb(out, ls_on_sock_out, ls);
	}
	if (ls->direct && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		bufferevent_enable(bev, EV_READ);
		bufferevent_disable(bev, EV_WRITE);
	} else {
		bufferevent_enable(bev, EV_READ | EV_WRITE);
	}
	ls_timers_update(ls);
}

int line_session_start_tls(struct line_session *ls)
{
	struct conn *c = ls->c;
	/* RFC 3207 4.2, RFC 2595 4 (CVE-2011-0411): nothing the client sent before
	 * the handshake may be taken as a command inside TLS */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t junk = evbuffer_get_length(in);
	if (junk > 0) {
		log_warn(c->sid, "event=starttls-pipelined-input-discarded bytes=%zu", junk);
		line_session_drain_wiped(in, junk); /* it may hold an AUTH line */
	}
	ls->rd.discarding = false;
	line_session_want_lines(ls);
	/* the reply that starts the handshake goes out through the bufferevent,
	 * under the TLS filter from now on */
	ls->direct = false;
	bufferevent_enable(c->bev, EV_WRITE);
	if (conn_start_tls(c) < 0) {
		log_error(c->sid, "event=starttls-failed");
		ls_close(ls);
		return -1;
	}
	ls_install(ls);
	return 1;
}

int line_session_start_compress(struct line_session *ls)
{
	struct conn *c = ls->c;
	if (c->zf != NULL || line_session_gone(ls))
		return -1;
	/* the OK that accepted the command leaves uncompressed, through the layer
	 * that is now under the filter */
	ls->direct = false;
	bufferevent_enable(c->bev, EV_WRITE);
	/* compressed input waiting below the filter is bounded too */
	struct bufferevent *under = c->bev;
	if (conn_start_compress(c) < 0) {
		log_error(c->sid, "event=compress-failed");
		return -1;
	}
	bufferevent_setwatermark(under, EV_READ, 0, ls->lim.input_high);
	ls_install(ls);
	/* input the peer sent after the command is already buffered under the
	 * filter: inflate it now rather than at the next read */
	bufferevent_flush(c->bev, EV_READ, BEV_NORMAL);
	return 1;
}

/* ---- life cycle ---- */

struct line_session *line_session_new(struct conn *c, const struct line_session_ops *ops, void *ctx,
                                      const struct line_session_limits *lim)
{
	struct line_session *ls = calloc(1, sizeof(*ls));
	if (ls == NULL)
		return NULL;
	ls->c = c;
	ls->ops = ops;
	ls->ctx = ctx;
	ls->lim = *lim;
	ls->rd.line_max_for = ops->line_max_for;
	ls->rd.ctx = ctx;
	line_session_set_line_max(ls, lim->line_max);
	struct event_base *base = bufferevent_get_base(c->bev);
	ls->t_input = evtimer_new(base, ls_on_input_timeout, ls);
	ls->t_cmd = evtimer_new(base, ls_on_cmd_timeout, ls);
	ls->t_write = evtimer_new(base, ls_on_write_timeout, ls);
	ls->t_deadline = evtimer_new(base, ls_on_deadline, ls);
	ls->ev_wake = event_new(base, -1, 0, ls_on_wake, ls);
	ls->ev_flush = event_new(base, -1, 0, ls_on_flush, ls);
	if (ls->t_input == NULL || ls->t_cmd == NULL || ls->t_write == NULL ||
	    ls->t_deadline == NULL || ls->ev_wake == NULL || ls->ev_flush == NULL) {
		line_session_free(&ls);
		return NULL;
	}
	ls_install(ls);
	return ls;
}

void line_session_free(struct line_session **lsp)
{
	struct line_session *ls = *lsp;
	if (ls == NULL)
		return;
	/* after conn_close the buffer (and its callback entry) went with the
	 * bufferevent */
	if (ls->sock_out_cb != NULL && !conn_is_dead(ls->c) && ls->c->bev != NULL)
		evbuffer_remove_cb_entry(ls->sock_out, ls->sock_out_cb);
	if (ls->t_input != NULL)
		event_free(ls->t_input);
	if (ls->t_cmd != NULL)
		event_free(ls->t_cmd);
	if (ls->t_write != NULL)
		event_free(ls->t_write);
	if (ls->t_deadline != NULL)
		event_free(ls->t_deadline);
	if (ls->ev_wake != NULL)
		event_free(ls->ev_wake);
	if (ls->ev_flush != NULL)
		event_free(ls->ev_flush);
	free(ls);
	*lsp = NULL;
}
