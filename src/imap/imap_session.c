/* IMAP sessions: input, states, the command table, authentication and the
 * commands of any state (RFC 9051 6.1, 6.2, RFC 5161 ENABLE, RFC 2971 ID, RFC 2342
 * NAMESPACE, RFC 2177 IDLE). Mailbox commands are in imap_cmd_mailbox.c, message
 * commands in imap_cmd_message.c; docs/imap.md lists the replies.
 *
 * Flow: the line-session layer hands over complete lines; command lines go to
 * the parser, which asks for literal octets (the session switches the layer to
 * RAW for them, after a "+" continuation when the literal is synchronizing) and
 * finally returns the command, which the table dispatches. Anything that blocks
 * runs as a worker job (struct imap_job) while the session is parked, so replies
 * go out in command order. */
#include "imap/imap_session.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/auth_exchange.h"
#include "auth/sasl.h"
#include "core/config.h"
#include "core/log.h"
#include "core/version.h"
#include "imap/imap_session_int.h"
#include "net/line_session.h"
#include "net/tls.h"

static const char *const imap_state_names[] = {"not-authenticated", "authenticated", "selected",
                                               "logout"};

/* ---- replies ---- */

void imap_reply(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_session_vreply(s->ls, fmt, ap);
	va_end(ap);
}

void imap_reply_bad(struct imap_session *s, const char *fmt, ...)
{
	struct evbuffer *out = line_session_output(s->ls);
	if (out == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_printf(out, "%s ", s->tag);
	evbuffer_add_vprintf(out, fmt, ap);
	evbuffer_add(out, "\r\n", 2);
	va_end(ap);
	line_session_count_error(s->ls);
}

struct evbuffer *imap_output(struct imap_session *s)
{
	return line_session_output(s->ls);
}

bool imap_session_gone(const struct imap_session *s)
{
	return line_session_gone(s->ls) || s->state == IMAP_STATE_LOGOUT;
}

bool imap_utf8(const struct imap_session *s)
{
	return (s->enabled & (IMAP_EN_UTF8 | IMAP_EN_REV2)) != 0;
}

void imap_session_set_state(struct imap_session *s, enum imap_state state)
{
	if (s->state == state)
		return;
	log_debug(s->c->sid, "event=state old=%s new=%s", imap_state_names[s->state],
	          imap_state_names[state]);
	s->state = state;
}

void imap_session_goodbye(struct imap_session *s, const char *reply)
{
	if (s->state == IMAP_STATE_LOGOUT || s->c->dead)
		return;
	imap_session_set_state(s, IMAP_STATE_LOGOUT);
	line_session_goodbye(s->ls, reply);
}

void imap_session_park(struct imap_session *s)
{
	s->busy = true;
	line_session_park(s->ls);
}

void imap_session_unpark(struct imap_session *s)
{
	s->busy = false;
	if (imap_session_gone(s))
		return;
	if (s->stopping) {
		imap_session_goodbye(s, "* BYE [UNAVAILABLE] Server shutting down");
		return;
	}
	line_session_unpark(s->ls);
}

/* ---- worker jobs ---- */

void imap_job_tagged(struct imap_job *j, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	free(j->tagged);
	j->tagged = NULL;
	if (n < 0 || asprintf(&j->tagged, "%s %s", j->tag, text) < 0)
		j->tagged = NULL;
	free(text);
}

void *imap_job_new(struct imap_session *s, size_t size)
{
	struct imap_job *j = calloc(1, size);
	if (j != NULL) {
		j->s = s;
		j->st = s->c->srv->store;
		memcpy(j->tag, s->tag, sizeof(j->tag));
		j->uidvalidity = s->view != NULL ? s->view->uidvalidity : 0;
		j->account = s->account != NULL ? strdup(s->account) : NULL;
		if (s->account != NULL && j->account == NULL) {
			free(j);
			j = NULL;
		}
	}
	if (j == NULL)
		imap_reply(s, "%s NO [UNAVAILABLE] Out of memory", s->tag);
	return j;
}

void imap_job_free(struct imap_job *j)
{
	if (j == NULL)
		return;
	if (j->free != NULL)
		j->free(j);
	imap_changes_free(&j->ch);
	free(j->account);
	free(j->mailbox);
	free(j->tagged);
	free(j->error);
	free(j);
}

int imap_job_check_view(struct imap_job *j)
{
	j->result = store_message_ranges(j->st, j->account, j->mailbox, j->uidvalidity, NULL, 0,
	                                 NULL, NULL, &j->error);
	return j->result;
}

void imap_job_tempfail(struct imap_job *j, const char *what)
{
	char esc[600];
	log_error(j->s->c->sid, "event=%s-failed user=%s error=\"%s\"", what,
	          j->account != NULL ? j->account : "-",
	          log_escape_str(j->error != NULL ? j->error : "unknown", esc, sizeof(esc)));
	imap_job_tagged(j, "NO [UNAVAILABLE] Temporary failure, try again later");
}

static void imap_job_run_cb(void *arg)
{
	struct imap_job *j = arg;
	if (j->run != NULL)
		j->run(j);
	if (j->refresh)
		imap_changes_collect(j);
}

static void imap_idle_refresh_done(struct imap_session *s);

static void imap_job_done_cb(void *arg)
{
	struct imap_job *j = arg;
	struct imap_session *s = j->s;
	bool idle = j->run == NULL && j->done == NULL && j->tag[0] == '\0';
	if (!imap_session_gone(s)) {
		if (j->done != NULL)
			j->done(j);
		bool refresh = j->refresh && s->view != NULL && !imap_session_gone(s);
		if (refresh && j->ch_result > 0)
			imap_view_apply(s, &j->ch);
		else if (refresh && j->ch_result == 0)
			imap_view_gone(s); /* deleted or renamed meanwhile */
		if (j->tagged != NULL && !imap_session_gone(s))
			imap_reply(s, "%s", j->tagged);
	}
	imap_job_free(j);
	if (idle) {
		imap_idle_refresh_done(s);
		return;
	}
	imap_session_unpark(s);
}

static int imap_job_submit_common(struct imap_session *s, struct imap_job *j, bool park)
{
	if (conn_submit(s->c, imap_job_run_cb, imap_job_done_cb, j) < 0) {
		if (j->tag[0] != '\0')
			imap_reply(s, "%s NO [UNAVAILABLE] Temporary failure, try again later",
			           j->tag);
		imap_job_free(j);
		return -1;
	}
	if (park)
		imap_session_park(s);
	return 1;
}

int imap_job_submit(struct imap_session *s, struct imap_job *j)
{
	return imap_job_submit_common(s, j, true);
}

int imap_job_submit_refresh(struct imap_session *s, struct imap_job *j)
{
	if (s->view != NULL) {
		j->refresh = true;
		j->since = s->view->highestmodseq;
		if (j->mailbox == NULL)
			j->mailbox = strdup(s->view->name);
		if (j->mailbox == NULL || strcmp(j->mailbox, s->view->name) != 0)
			j->refresh = false; /* refreshes name the selected mailbox only */
	}
	return imap_job_submit_common(s, j, true);
}

/* ---- change notification (store_watch_add) and IDLE ---- */

static void imap_link_unref(struct imap_watch_link *l)
{
	if (atomic_fetch_sub(&l->refs, 1) == 1)
		free(l);
}

static void imap_idle_refresh(struct imap_session *s);

/* On the loop: the watcher said the account changed. */
static void imap_watch_posted(void *arg)
{
	struct imap_watch_link *l = arg;
	atomic_store(&l->pending, false);
	struct imap_session *s = l->s;
	if (s != NULL && s->idling && !s->idle_refreshing && !imap_session_gone(s))
		imap_idle_refresh(s);
	imap_link_unref(l);
}

/* On the thread that made the change: only hand the news to the loop. */
static void imap_watch_cb(void *ctx, const char *account, const char *mailbox)
{
	struct imap_watch_link *l = ctx;
	struct imap_session *s = l->s; /* only compared, never followed here */
	(void)s;
	if (atomic_exchange(&l->pending, true))
		return; /* a post is on its way */
	atomic_fetch_add(&l->refs, 1);
	struct worker_post *p = worker_post_new(imap_watch_posted, l);
	if (p == NULL) {
		atomic_store(&l->pending, false);
		imap_link_unref(l);
		return; /* the poll catches up */
	}
	worker_inbox_post(l->inbox, p);
}

static void imap_watch_stop(struct imap_session *s)
{
	if (s->watch != NULL)
		store_watch_remove(s->c->srv->store, &s->watch);
	if (s->link != NULL) {
		s->link->s = NULL;
		imap_link_unref(s->link);
		s->link = NULL;
	}
}

/* At login: a watcher of the account (without one, IDLE polls only). */
static void imap_watch_start(struct imap_session *s)
{
	struct imap_watch_link *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return;
	atomic_init(&l->refs, 1);
	atomic_init(&l->pending, false);
	l->s = s;
	l->inbox = s->c->loop->inbox;
	s->link = l;
	char *error = NULL;
	if (store_watch_add(s->c->srv->store, s->account, imap_watch_cb, l, &s->watch, &error) <
	    0) {
		char esc[300];
		log_debug(s->c->sid, "event=watch-failed error=\"%s\"",
		          log_escape_str(error != NULL ? error : "unknown", esc, sizeof(esc)));
		free(error);
		s->watch = NULL;
	}
}

static void imap_idle_end(struct imap_session *s)
{
	s->idling = false;
	s->idle_done = false;
	if (s->ev_poll != NULL)
		event_del(s->ev_poll);
	imap_reply(s, "%s OK IDLE terminated", s->tag);
}

static void imap_idle_arm_poll(struct imap_session *s)
{
	if (s->ev_poll == NULL)
		return;
	struct timeval tv = {.tv_sec = IMAP_IDLE_POLL_SECONDS};
	event_add(s->ev_poll, &tv);
}

static void imap_idle_refresh(struct imap_session *s)
{
	if (s->view == NULL) {
		imap_idle_arm_poll(s);
		return;
	}
	struct imap_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return;
	j->s = s;
	j->st = s->c->srv->store;
	j->account = strdup(s->account);
	j->refresh = true;
	j->since = s->view->highestmodseq;
	j->mailbox = strdup(s->view->name);
	if (j->account == NULL || j->mailbox == NULL) {
		imap_job_free(j);
		return;
	}
	if (conn_submit(s->c, imap_job_run_cb, imap_job_done_cb, j) < 0) {
		imap_job_free(j);
		return;
	}
	s->idle_refreshing = true;
	s->busy = true;
}

static void imap_idle_refresh_done(struct imap_session *s)
{
	s->idle_refreshing = false;
	s->busy = false;
	if (imap_session_gone(s))
		return;
	if (s->stopping) {
		imap_session_goodbye(s, "* BYE [UNAVAILABLE] Server shutting down");
		return;
	}
	if (s->idle_done) {
		imap_idle_end(s);
		line_session_unpark(s->ls);
		return;
	}
	if (s->idling)
		imap_idle_arm_poll(s);
	else
		line_session_unpark(s->ls); /* IDLE ended by a bad line meanwhile */
}

static void imap_idle_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;
	if (s->idling && !s->idle_refreshing && !imap_session_gone(s))
		imap_idle_refresh(s);
}

/* RFC 2177: "+ idling", changes as they come, until DONE. */
static void imap_cmd_idle(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs != 0) {
		imap_reply_bad(s, "BAD Unexpected arguments");
		return;
	}
	if (s->ev_poll == NULL)
		s->ev_poll = evtimer_new(s->c->loop->base, imap_idle_poll_cb, s);
	s->idling = true;
	s->idle_done = false;
	imap_reply(s, "+ idling");
	/* what changed before IDLE began is reported at once */
	imap_idle_refresh(s);
	if (!s->idle_refreshing)
		imap_idle_arm_poll(s);
}

static void imap_idle_line(struct imap_session *s, const char *line, size_t len)
{
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0) {
		if (s->idle_refreshing) {
			/* the refresh's responses go out first, then the tagged OK */
			s->idle_done = true;
			line_session_park(s->ls);
			return;
		}
		imap_idle_end(s);
		return;
	}
	s->idling = false;
	if (s->ev_poll != NULL)
		event_del(s->ev_poll);
	if (s->idle_refreshing) {
		s->idle_done = false;
		line_session_park(s->ls);
	}
	imap_reply_bad(s, "BAD Expected DONE");
}

/* ---- capabilities ---- */

static bool imap_plaintext_ok(const struct imap_session *s)
{
	return s->c->ssl != NULL || (s->allow_plaintext_on_loopback && conn_is_loopback(s->c));
}

void imap_capabilities(struct imap_session *s, struct evbuffer *out)
{
	evbuffer_add_printf(out, "IMAP4rev2 IMAP4rev1");
	if (s->state == IMAP_STATE_NOT_AUTH) {
		if (s->c->ssl == NULL && s->c->loop->tls != NULL)
			evbuffer_add_printf(out, " STARTTLS");
		bool ok = imap_plaintext_ok(s);
		if (!ok)
			evbuffer_add_printf(out, " LOGINDISABLED");
		unsigned char cb[32];
		bool have_cb = s->c->ssl != NULL && tls_channel_binding(s->c->ssl, cb) > 0;
		explicit_bzero(cb, sizeof(cb));
		const char *mechs = sasl_mechs_advertised(ok, have_cb);
		while (mechs != NULL && *mechs != '\0') {
			size_t n = strcspn(mechs, " ");
			if (n > 0)
				evbuffer_add_printf(out, " AUTH=%.*s", (int)n, mechs);
			mechs += n;
			mechs += strspn(mechs, " ");
		}
		evbuffer_add_printf(out, " SASL-IR");
	} else if (!s->compressed) {
		evbuffer_add_printf(out, " COMPRESS=DEFLATE");
	}
	evbuffer_add_printf(
	    out,
	    " LITERAL+ ENABLE ID IDLE NAMESPACE UNSELECT UIDPLUS MOVE MULTIAPPEND"
	    " APPENDLIMIT=%llu CHILDREN SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED"
	    " LIST-STATUS STATUS=SIZE UTF8=ACCEPT BINARY ESEARCH SEARCHRES CONDSTORE"
	    " QRESYNC",
	    (unsigned long long)s->max_message_size);
}

/* ---- commands of any state ---- */

static bool imap_need_no_args(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs == 0)
		return true;
	imap_reply_bad(s, "BAD Unexpected arguments");
	return false;
}

static void imap_cmd_capability(struct imap_session *s, const struct imap_command *cmd)
{
	if (!imap_need_no_args(s, cmd))
		return;
	struct evbuffer *out = imap_output(s);
	if (out == NULL)
		return;
	evbuffer_add_printf(out, "* CAPABILITY ");
	imap_capabilities(s, out);
	evbuffer_add_printf(out, "\r\n%s OK CAPABILITY completed\r\n", s->tag);
}

void imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd)
{
	if (!imap_need_no_args(s, cmd))
		return;
	if (s->view == NULL) {
		imap_reply(s, "%s OK NOOP completed", s->tag);
		return;
	}
	struct imap_job *j = imap_job_new(s, sizeof(*j));
	if (j == NULL)
		return;
	imap_job_tagged(j, "OK NOOP completed");
	imap_job_submit_refresh(s, j);
}

static void imap_cmd_logout(struct imap_session *s, const struct imap_command *cmd)
{
	if (!imap_need_no_args(s, cmd))
		return;
	/* RFC 9051 6.1.3: the untagged BYE, then the tagged OK */
	imap_reply(s, "* BYE Logging out");
	char reply[IMAP_TAG_MAX + 32];
	snprintf(reply, sizeof(reply), "%s OK LOGOUT completed", s->tag);
	log_info(s->c->sid, "event=logout user=%s", s->account != NULL ? s->account : "-");
	imap_session_goodbye(s, reply);
}

static void imap_cmd_starttls(struct imap_session *s, const struct imap_command *cmd)
{
	if (s->c->ssl != NULL) {
		imap_reply_bad(s, "BAD TLS is already active");
		return;
	}
	if (s->c->loop->tls == NULL) {
		imap_reply_bad(s, "BAD STARTTLS is not available");
		return;
	}
	if (!imap_need_no_args(s, cmd))
		return;
	imap_reply(s, "%s OK Begin TLS negotiation now", s->tag);
	/* RFC 9051 6.2.1: input buffered before the handshake is discarded there */
	if (line_session_start_tls(s->ls) < 0)
		return;
	log_info(s->c->sid, "event=starttls");
}

/* RFC 5161: only in the authenticated state; ENABLED lists what this command
 * turned on. */
static void imap_cmd_enable(struct imap_session *s, const struct imap_command *cmd)
{
	if (cmd->nargs == 0) {
		imap_reply_bad(s, "BAD Missing capability names");
		return;
	}
	unsigned newly = 0;
	for (unsigned i = 0; i < cmd->nargs; i = imap_token_skip(cmd->args, i)) {
		const struct imap_token *t = &cmd->args[i];
		if (t->type != IMAP_TOKEN_ATOM || !(t->flags & IMAP_ATOM_ATOM)) {
			imap_reply_bad(s, "BAD Invalid capability name");
			return;
		}
		unsigned bit = 0;
		if (strcasecmp(t->data, "IMAP4rev2") == 0)
			bit = IMAP_EN_REV2;
		else if (strcasecmp(t->data, "UTF8=ACCEPT") == 0)
			bit = IMAP_EN_UTF8;
		else if (strcasecmp(t->data, "CONDSTORE") == 0)
			bit = IMAP_EN_CONDSTORE;
		else if (strcasecmp(t->data, "QRESYNC") == 0)
			bit = IMAP_EN_QRESYNC;
		bit &= IMAP_EN_AVAILABLE;
		if (bit != 0 && !(s->enabled & bit)) {
			newly |= bit;
			s->enabled |= bit;
			if (bit == IMAP_EN_QRESYNC) /* RFC 7162 3.2.3: implies CONDSTORE */
				s->enabled |= IMAP_EN_CONDSTORE;
		}
	}
	struct evbuffer *out = imap_output(s);
	if (out == NULL)
		return;
	evbuffer_add_printf(out, "* ENABLED");
	if (newly & IMAP_EN_REV2)
		evbuffer_add_printf(out, " IMAP4rev2");
	if (newly & IMAP_EN_UTF8)
		evbuffer_add_printf(out, " UTF8=ACCEPT");
	if (newly & IMAP_EN_CONDSTORE)
		evbuffer_add_printf(out, " CONDSTORE");
	if (newly & IMAP_EN_QRESYNC)
		evbuffer_add_printf(out, " QRESYNC");
	evbuffer_add_printf(out, "\r\n%s OK ENABLE completed\r\n", s->tag);
}

/* RFC 2971: the client's pairs are logged; ours is the name and version. */
#define IMAP_ID_PAIRS_MAX 30
#define IMAP_ID_FIELD_MAX 30
#define IMAP_ID_VALUE_MAX 1024

static void imap_cmd_id(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	bool nil = cmd->nargs == 1 && a[0].type == IMAP_TOKEN_ATOM && (a[0].flags & IMAP_ATOM_NIL);
	if (!nil && (cmd->nargs == 0 || a[0].type != IMAP_TOKEN_LIST ||
	             imap_token_skip(a, 0) != cmd->nargs)) {
		imap_reply_bad(s, "BAD Expected a list of field/value pairs or NIL");
		return;
	}
	char logbuf[512];
	size_t loglen = 0;
	logbuf[0] = '\0';
	if (!nil) {
		unsigned n = a[0].span;
		if (n % 2 != 0 || n / 2 > IMAP_ID_PAIRS_MAX) {
			imap_reply_bad(s, "BAD Expected at most 30 field/value pairs");
			return;
		}
		for (unsigned i = 1; i + 1 <= n; i += 2) {
			const struct imap_token *f = &a[i], *v = &a[i + 1];
			if (!IMAP_TOKEN_IS_STRING(f) || f->len > IMAP_ID_FIELD_MAX ||
			    !(IMAP_TOKEN_IS_NSTRING(v)) || v->len > IMAP_ID_VALUE_MAX ||
			    f->depth != 1 || v->depth != 1) {
				imap_reply_bad(s, "BAD Invalid field/value pair");
				return;
			}
			char ef[64], ev[128];
			bool vnil = v->type == IMAP_TOKEN_ATOM;
			int w = snprintf(
			    logbuf + loglen, sizeof(logbuf) - loglen, "%s%s=%s", loglen ? "," : "",
			    log_escape(f->data, f->len, 30, ef, sizeof(ef)),
			    vnil ? "NIL" : log_escape(v->data, v->len, 60, ev, sizeof(ev)));
			if (w > 0 && (size_t)w < sizeof(logbuf) - loglen)
				loglen += (size_t)w;
		}
	}
	log_info(s->c->sid, "event=id client=\"%s\"", logbuf);
	imap_reply(s, "* ID (\"name\" \"hermod\" \"version\" \"%s\")", HERMOD_VERSION);
	imap_reply(s, "%s OK ID completed", s->tag);
}

/* RFC 4978: the OK goes out uncompressed, everything after it compressed. */
static void imap_cmd_compress(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	if (cmd->nargs != 1 || a[0].type != IMAP_TOKEN_ATOM) {
		imap_reply_bad(s, "BAD Expected a compression mechanism");
		return;
	}
	if (strcasecmp(a[0].data, "DEFLATE") != 0) {
		imap_reply_bad(s, "BAD Unknown compression mechanism");
		return;
	}
	if (s->compressed) {
		imap_reply(s, "%s NO [COMPRESSIONACTIVE] DEFLATE is already active", s->tag);
		return;
	}
	imap_reply(s, "%s OK DEFLATE active", s->tag);
	if (line_session_start_compress(s->ls) < 0) {
		/* the OK is queued already: nothing can be said any more */
		imap_session_goodbye(s, "* BYE [UNAVAILABLE] Compression failed");
		return;
	}
	s->compressed = true;
	log_info(s->c->sid, "event=compress");
}

/* RFC 2342: one personal namespace, no others. */
static void imap_cmd_namespace(struct imap_session *s, const struct imap_command *cmd)
{
	if (!imap_need_no_args(s, cmd))
		return;
	imap_reply(s, "* NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_reply(s, "%s OK NAMESPACE completed", s->tag);
}

/* ---- LOGIN and AUTHENTICATE: the IMAP framing of the shared exchange ---- */

static void imap_auth_challenge(void *ctx, const char *b64)
{
	struct imap_session *s = ctx;
	imap_reply(s, "+ %s", b64); /* RFC 9051 6.2.2 */
	s->sasl = true;
}

static void imap_auth_success(void *ctx, const char *account)
{
	struct imap_session *s = ctx;
	s->sasl = false;
	s->account = strdup(account);
	if (s->account == NULL) {
		imap_reply(s, "%s NO [UNAVAILABLE] Temporary failure, try again later", s->tag);
		return;
	}
	imap_session_set_state(s, IMAP_STATE_AUTH);
	imap_parser_set_authenticated(s->parser, true);
	line_session_set_idle_timeout(s->ls, s->c->loop->cfg->imap_idle_timeout);
	imap_watch_start(s);
	struct evbuffer *out = imap_output(s);
	if (out == NULL)
		return;
	evbuffer_add_printf(out, "%s OK [CAPABILITY ", s->tag);
	imap_capabilities(s, out);
	evbuffer_add_printf(out, "] Logged in\r\n");
}

static void imap_auth_failure(void *ctx, enum auth_outcome outcome)
{
	struct imap_session *s = ctx;
	s->sasl = false;
	switch (outcome) {
	case AUTH_MALFORMED:
		/* answered like wrong credentials, counted twice */
		line_session_count_error(s->ls);
		/* fall through */
	case AUTH_FAILED:
		imap_reply_bad(s, "NO [AUTHENTICATIONFAILED] Authentication failed");
		break;
	case AUTH_UNDECODABLE:
		imap_reply_bad(s, "BAD Invalid base64 data");
		break;
	case AUTH_CANCELLED: /* RFC 9051 6.2.2: tagged BAD */
		imap_reply_bad(s, "BAD Authentication cancelled");
		break;
	case AUTH_THROTTLED:
		imap_reply(s,
		           "%s NO [UNAVAILABLE] Too many failed authentications, try again later",
		           s->tag);
		break;
	case AUTH_TEMPFAIL:
	default:
		imap_reply(s, "%s NO [UNAVAILABLE] Temporary failure, try again later", s->tag);
		break;
	}
}

static void imap_auth_busy(void *ctx, bool busy)
{
	struct imap_session *s = ctx;
	s->auth_busy = busy;
	if (busy)
		line_session_park(s->ls);
	else if (!s->busy)
		imap_session_unpark(s);
}

static const struct auth_exchange_ops imap_auth_ops = {
    .challenge = imap_auth_challenge,
    .success = imap_auth_success,
    .failure = imap_auth_failure,
    .busy = imap_auth_busy,
};

static struct auth_exchange *imap_auth_new(struct imap_session *s, enum sasl_mech mech,
                                           const char *label)
{
	if (auth_exchange_ip_refused(s->c)) {
		imap_reply(s,
		           "%s NO [UNAVAILABLE] Too many failed authentications, try again later",
		           s->tag);
		return NULL;
	}
	unsigned char cb[32];
	bool have_cb = label == NULL && s->c->ssl != NULL && tls_channel_binding(s->c->ssl, cb) > 0;
	auth_exchange_free(&s->auth);
	s->auth = auth_exchange_new(s->c, mech, label, have_cb ? cb : NULL,
	                            have_cb ? sizeof(cb) : 0, &imap_auth_ops, s);
	explicit_bzero(cb, sizeof(cb));
	if (s->auth == NULL)
		imap_reply(s, "%s NO [UNAVAILABLE] Temporary failure, try again later", s->tag);
	return s->auth;
}

static bool imap_need_plaintext_ok(struct imap_session *s)
{
	if (imap_plaintext_ok(s))
		return true;
	/* RFC 9051 6.2.3, 7.1: LOGINDISABLED; PRIVACYREQUIRED says why */
	imap_reply_bad(s, "NO [PRIVACYREQUIRED] Plaintext authentication disallowed without TLS");
	return false;
}

/* RFC 9051 6.2.3, checked as a SASL PLAIN message "\0user\0password" (RFC 4616):
 * one password path for every protocol. */
static void imap_cmd_login(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	if (cmd->nargs != 2 || !IMAP_TOKEN_IS_ASTRING(&a[0]) || !IMAP_TOKEN_IS_ASTRING(&a[1])) {
		imap_reply_bad(s, "BAD Expected user name and password");
		return;
	}
	if (!imap_need_plaintext_ok(s))
		return;
	if (a[0].len > SASL_FIELD_MAX || a[1].len > SASL_FIELD_MAX ||
	    memchr(a[0].data, '\0', a[0].len) != NULL ||
	    memchr(a[1].data, '\0', a[1].len) != NULL) {
		imap_reply_bad(s, "NO [AUTHENTICATIONFAILED] Authentication failed");
		return;
	}
	size_t mlen = a[0].len + a[1].len + 2;
	unsigned char msg[2 * SASL_FIELD_MAX + 2];
	if (imap_auth_new(s, SASL_MECH_PLAIN, "LOGIN") == NULL)
		return;
	msg[0] = '\0';
	memcpy(msg + 1, a[0].data, a[0].len);
	msg[1 + a[0].len] = '\0';
	memcpy(msg + 2 + a[0].len, a[1].data, a[1].len);
	auth_exchange_start_raw(s->auth, msg, mlen);
	explicit_bzero(msg, sizeof(msg));
}

/* RFC 9051 6.2.2 with RFC 4959 SASL-IR ("=" is an empty initial response). */
static void imap_cmd_authenticate(struct imap_session *s, const struct imap_command *cmd)
{
	const struct imap_token *a = cmd->args;
	if (cmd->nargs < 1 || cmd->nargs > 2 || a[0].type != IMAP_TOKEN_ATOM ||
	    (cmd->nargs == 2 && a[1].type != IMAP_TOKEN_ATOM)) {
		imap_reply_bad(s, "BAD Expected a mechanism and an optional initial response");
		return;
	}
	int mech = sasl_mech_from_name(a[0].data, a[0].len);
	unsigned char cb[32];
	bool have_cb = s->c->ssl != NULL && tls_channel_binding(s->c->ssl, cb) > 0;
	explicit_bzero(cb, sizeof(cb));
	if (mech < 0 || (mech == SASL_MECH_SCRAM_SHA_256_PLUS && !have_cb)) {
		imap_reply_bad(s, "NO [CANNOT] Unsupported authentication mechanism");
		return;
	}
	if ((mech == SASL_MECH_PLAIN || mech == SASL_MECH_LOGIN) && !imap_need_plaintext_ok(s))
		return;
	if (imap_auth_new(s, (enum sasl_mech)mech, NULL) == NULL)
		return;
	if (cmd->nargs == 1)
		auth_exchange_start(s->auth, NULL, 0);
	else
		auth_exchange_start(s->auth, a[1].data, a[1].len);
}

/* ---- the command table ---- */

#define IMAP_IN_NOT_AUTH (1u << IMAP_STATE_NOT_AUTH)
#define IMAP_IN_AUTH (1u << IMAP_STATE_AUTH)
#define IMAP_IN_SELECTED (1u << IMAP_STATE_SELECTED)
#define IMAP_IN_ANY (IMAP_IN_NOT_AUTH | IMAP_IN_AUTH | IMAP_IN_SELECTED)
#define IMAP_IN_LOGGED_IN (IMAP_IN_AUTH | IMAP_IN_SELECTED)
#define IMAP_CMD_UID 0x100u /* also as "UID <name>" */

struct imap_command_def {
	const char *name;
	unsigned flags; /* IMAP_IN_* where the command is valid, IMAP_CMD_UID */
	void (*run)(struct imap_session *s, const struct imap_command *cmd);
};

static const struct imap_command_def imap_commands[] = {
    {"CAPABILITY", IMAP_IN_ANY, imap_cmd_capability},
    {"NOOP", IMAP_IN_ANY, imap_cmd_noop},
    {"LOGOUT", IMAP_IN_ANY, imap_cmd_logout},
    {"ID", IMAP_IN_ANY, imap_cmd_id},
    {"STARTTLS", IMAP_IN_NOT_AUTH, imap_cmd_starttls},
    {"LOGIN", IMAP_IN_NOT_AUTH, imap_cmd_login},
    {"AUTHENTICATE", IMAP_IN_NOT_AUTH, imap_cmd_authenticate},
    {"ENABLE", IMAP_IN_AUTH, imap_cmd_enable},
    {"NAMESPACE", IMAP_IN_LOGGED_IN, imap_cmd_namespace},
    {"COMPRESS", IMAP_IN_LOGGED_IN, imap_cmd_compress},
    {"IDLE", IMAP_IN_LOGGED_IN, imap_cmd_idle},
    {"LIST", IMAP_IN_LOGGED_IN, imap_cmd_list},
    {"LSUB", IMAP_IN_LOGGED_IN, imap_cmd_lsub},
    {"STATUS", IMAP_IN_LOGGED_IN, imap_cmd_status},
    {"SELECT", IMAP_IN_LOGGED_IN, imap_cmd_select},
    {"EXAMINE", IMAP_IN_LOGGED_IN, imap_cmd_examine},
    {"CREATE", IMAP_IN_LOGGED_IN, imap_cmd_create},
    {"DELETE", IMAP_IN_LOGGED_IN, imap_cmd_delete},
    {"RENAME", IMAP_IN_LOGGED_IN, imap_cmd_rename},
    {"SUBSCRIBE", IMAP_IN_LOGGED_IN, imap_cmd_subscribe},
    {"UNSUBSCRIBE", IMAP_IN_LOGGED_IN, imap_cmd_unsubscribe},
    {"APPEND", IMAP_IN_LOGGED_IN, imap_cmd_append},
    {"CHECK", IMAP_IN_SELECTED, imap_cmd_noop},
    {"CLOSE", IMAP_IN_SELECTED, imap_cmd_close},
    {"UNSELECT", IMAP_IN_SELECTED, imap_cmd_unselect},
    {"EXPUNGE", IMAP_IN_SELECTED | IMAP_CMD_UID, imap_cmd_expunge},
    {"STORE", IMAP_IN_SELECTED | IMAP_CMD_UID, imap_cmd_store},
    {"COPY", IMAP_IN_SELECTED | IMAP_CMD_UID, imap_cmd_copy},
    {"MOVE", IMAP_IN_SELECTED | IMAP_CMD_UID, imap_cmd_move},
    {"FETCH", IMAP_IN_SELECTED | IMAP_CMD_UID, imap_cmd_fetch},
    {"SEARCH", IMAP_IN_SELECTED | IMAP_CMD_UID, imap_cmd_search},
};

static void imap_session_command(struct imap_session *s, const struct imap_command *cmd)
{
	snprintf(s->tag, sizeof(s->tag), "%s", cmd->tag);
	const char *name = cmd->uid_name != NULL ? cmd->uid_name : cmd->name;
	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
		const struct imap_command_def *def = &imap_commands[i];
		if (strcmp(def->name, name) != 0)
			continue;
		if (cmd->uid_name != NULL && !(def->flags & IMAP_CMD_UID))
			break;
		if (!(def->flags & (1u << s->state))) {
			if (s->state == IMAP_STATE_AUTH && (def->flags & IMAP_IN_SELECTED))
				imap_reply_bad(s, "BAD No mailbox selected");
			else if (s->state == IMAP_STATE_NOT_AUTH)
				imap_reply_bad(s, "BAD Command not valid before authentication");
			else
				imap_reply_bad(s, "BAD Command not valid in this state");
			return;
		}
		log_debug(s->c->sid, "event=command name=%s%s%s", cmd->name,
		          cmd->uid_name != NULL ? " " : "",
		          cmd->uid_name != NULL ? cmd->uid_name : "");
		def->run(s, cmd);
		return;
	}
	char esc[64];
	log_info(
	    s->c->sid, "event=unknown-command name=\"%s\"",
	    log_escape_str(cmd->uid_name != NULL ? cmd->uid_name : cmd->name, esc, sizeof(esc)));
	if (cmd->uid_name != NULL)
		imap_reply_bad(s, "BAD Unknown UID command");
	else
		imap_reply_bad(s, "BAD Unknown command");
}

/* ---- input ---- */

static void imap_append_discard(struct imap_session *s)
{
	for (unsigned i = 0; i < s->nappend; i++)
		store_msg_free(&s->append_msgs[i]);
	s->nappend = 0;
	s->sink_error = NULL;
}

static void imap_parse_error_reply(struct imap_session *s)
{
	const struct imap_parse_error *e = imap_parser_error(s->parser);
	const char *text = e->text;
	const char *code = e->code;
	if (e->kind == IMAP_PARSE_ERR_SINK && s->sink_error != NULL)
		text = s->sink_error;
	char codebuf[80] = "";
	if (code != NULL)
		snprintf(codebuf, sizeof(codebuf), "[%s] ", code);
	if (e->bye) {
		char reply[300];
		snprintf(reply, sizeof(reply), "* BYE %s%s", codebuf, text);
		log_info(s->c->sid, "event=bye reason=\"%s\"", text);
		imap_session_goodbye(s, reply);
		return;
	}
	if (e->tag == NULL) {
		line_session_error(s->ls, "* BAD %s%s", codebuf, text);
		return;
	}
	snprintf(s->tag, sizeof(s->tag), "%s", e->tag);
	if (e->kind == IMAP_PARSE_ERR_APPEND_TOO_BIG || e->kind == IMAP_PARSE_ERR_SINK)
		imap_reply(s, "%s %s %s%s", e->tag, e->status, codebuf, text);
	else
		line_session_error(s->ls, "%s %s %s%s", e->tag, e->status, codebuf, text);
}

static void imap_parse_result(struct imap_session *s, int r)
{
	for (;;) {
		if (r == IMAP_PARSE_NEED_LITERAL) {
			const struct imap_literal_info *lit = imap_parser_literal(s->parser);
			if (lit->size == 0) {
				size_t used = 0;
				r = imap_parser_feed_literal(s->parser, NULL, 0, &used);
				continue;
			}
			if (lit->sync && !lit->discard)
				imap_reply(s, "+ Ready for literal data");
			s->literal_pending = true;
			line_session_want_raw(s->ls, lit->size);
			return;
		}
		if (r == IMAP_PARSE_COMMAND) {
			imap_session_command(s, imap_parser_command(s->parser));
		} else if (r == IMAP_PARSE_ERROR) {
			imap_parse_error_reply(s);
		} else {
			return; /* NEED_LINE */
		}
		imap_append_discard(s);
		imap_parser_reset(s->parser);
		return;
	}
}

static void imap_ls_on_line(void *ctx, char *line, size_t len)
{
	struct imap_session *s = ctx;
	if (s->state == IMAP_STATE_LOGOUT)
		return;
	if (s->sasl) {
		auth_exchange_response(s->auth, line, len);
		return;
	}
	if (s->idling) {
		imap_idle_line(s, line, len);
		return;
	}
	imap_parse_result(s, imap_parser_feed_line(s->parser, line, len));
}

static void imap_ls_on_line_too_long(void *ctx)
{
	struct imap_session *s = ctx;
	if (s->sasl || s->idling) {
		if (s->sasl) {
			auth_exchange_free(&s->auth);
			s->sasl = false;
		}
		s->idling = false;
		imap_reply_bad(s, "BAD [TOOBIG] Line too long");
		return;
	}
	imap_parse_result(s, imap_parser_line_dropped(s->parser));
}

static long imap_ls_on_data(void *ctx, const char *data, size_t len)
{
	struct imap_session *s = ctx;
	size_t used = 0;
	int r = imap_parser_feed_literal(s->parser, data, len, &used);
	if (r == IMAP_PARSE_NEED_LINE)
		s->literal_pending = false;
	return (long)used;
}

static void imap_ls_on_raw_end(void *ctx)
{
	struct imap_session *s = ctx;
	s->literal_pending = false;
}

static const char *imap_ls_state_name(void *ctx)
{
	struct imap_session *s = ctx;
	return imap_state_names[s->state];
}

static void imap_ls_on_drain(void *ctx)
{
	struct imap_session *s = ctx;
	if (!imap_session_gone(s))
		imap_session_on_drain(s);
}

static const struct line_session_ops imap_ls_ops = {
    .on_line = imap_ls_on_line,
    .on_line_too_long = imap_ls_on_line_too_long,
    .on_data = imap_ls_on_data,
    .on_raw_end = imap_ls_on_raw_end,
    .state_name = imap_ls_state_name,
    .on_drain = imap_ls_on_drain,
    .timeout_reply = "* BYE Autologout; idle for too long",
    .too_many_errors = "* BYE Too many errors",
};

/* ---- APPEND message literals: the parser's sink writes them into message
 * writers (store_msg, on the loop: they never sync) ---- */

static int imap_sink_begin(void *ctx, unsigned index, uint64_t size, bool literal8)
{
	struct imap_session *s = ctx;
	if (s->state != IMAP_STATE_AUTH && s->state != IMAP_STATE_SELECTED) {
		s->sink_error = "Command not valid before authentication";
		return -1;
	}
	if (index >= IMAP_APPEND_MAX || s->nappend >= IMAP_APPEND_MAX) {
		s->sink_error = "[LIMIT] Too many messages in one APPEND";
		return -1;
	}
	char *error = NULL;
	if (store_msg_begin(s->c->srv->store, &s->append_msgs[s->nappend], &error) < 0) {
		free(error);
		s->sink_error = "[UNAVAILABLE] Temporary failure, try again later";
		return -1;
	}
	s->nappend++;
	return 1;
}

static int imap_sink_data(void *ctx, const char *data, size_t len)
{
	struct imap_session *s = ctx;
	if (s->nappend == 0)
		return -1;
	char *error = NULL;
	if (store_msg_write(s->append_msgs[s->nappend - 1], data, len, &error) < 0) {
		free(error);
		s->sink_error = "[UNAVAILABLE] Temporary failure, try again later";
		return -1;
	}
	return 1;
}

static void imap_sink_end(void *ctx, bool ok)
{
	struct imap_session *s = ctx;
	if (!ok)
		imap_append_discard(s);
}

/* ---- proto_ops ---- */

static int imap_session_start(struct conn *c)
{
	struct imap_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -1;
	const struct config *cfg = c->loop->cfg;
	s->c = c;
	c->proto_data = s;
	s->allow_plaintext_on_loopback = cfg->auth_allow_plaintext_on_loopback;
	s->max_message_size = cfg->max_message_size;
	atomic_init(&s->dirty, false);
	struct imap_parse_limits pl;
	imap_parse_limits_default(&pl);
	pl.literal_max = cfg->max_message_size; /* APPENDLIMIT (RFC 7889) */
	struct imap_literal_sink sink = {
	    .begin = imap_sink_begin, .data = imap_sink_data, .end = imap_sink_end, .ctx = s};
	s->parser = imap_parser_new(&pl, &sink);
	if (s->parser == NULL)
		return -1;
	struct line_session_limits ll = {
	    .line_max = LINE_SESSION_LINE_MAX,
	    .idle_timeout = cfg->idle_timeout,
	    .command_timeout = cfg->command_timeout,
	    .data_timeout = cfg->data_timeout,
	    .max_errors = cfg->max_errors,
	    .input_high = IMAP_INPUT_HIGH,
	    .output_high = IMAP_OUTPUT_HIGH,
	    .output_low = IMAP_OUTPUT_LOW,
	};
	s->ls = line_session_new(c, &imap_ls_ops, s, &ll);
	if (s->ls == NULL)
		return -1;
	s->state = IMAP_STATE_NOT_AUTH;
	/* RFC 9051 7.1.1: the greeting may carry the capabilities */
	struct evbuffer *out = imap_output(s);
	if (out != NULL) {
		evbuffer_add_printf(out, "* OK [CAPABILITY ");
		imap_capabilities(s, out);
		evbuffer_add_printf(out, "] hermod IMAP server ready\r\n");
	}
	return 1;
}

static void imap_session_shutdown(struct conn *c)
{
	struct imap_session *s = c->proto_data;
	if (s->busy || s->auth_busy) {
		s->stopping = true;
		return;
	}
	imap_session_goodbye(s, "* BYE [UNAVAILABLE] Server shutting down");
}

static void imap_session_free(struct conn *c)
{
	struct imap_session *s = c->proto_data;
	if (s == NULL)
		return;
	imap_watch_stop(s);
	if (s->ev_poll != NULL)
		event_free(s->ev_poll);
	imap_fetch_run_free(&s->fetch);
	line_session_free(&s->ls);
	auth_exchange_free(&s->auth);
	imap_append_discard(s);
	imap_parser_free(&s->parser);
	imap_view_free(&s->view);
	free(s->saved);
	free(s->account);
	free(s);
	c->proto_data = NULL;
}

const struct proto_ops imap_proto = {
    .name = "imap",
    .start = imap_session_start,
    .shutdown = imap_session_shutdown,
    .free = imap_session_free,
    .overload_reply = "* BYE [UNAVAILABLE] Too many connections\r\n",
};

/* RFC 8314: TLS from the first byte; the over-limit reply cannot be sent in clear */
const struct proto_ops imaps_proto = {
    .name = "imaps",
    .start = imap_session_start,
    .shutdown = imap_session_shutdown,
    .free = imap_session_free,
    .overload_reply = NULL,
    .implicit_tls = true,
};
