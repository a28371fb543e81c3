/* POP3 sessions (RFC 1939, RFC 2449, RFC 2595, RFC 5034, RFC 3206). The replies are
 * listed in docs/pop3.md.
 *
 * Flow: the line-session layer (net/line_session.h) reads the input and hands
 * over complete lines one at a time (pop3_ls_on_line). Anything that blocks (password
 * checks, the INBOX snapshot, reading a message, the expunge at QUIT) runs as a
 * worker job; while a job runs the session is "busy" and pipelined input waits in
 * the input buffer, so replies always go out in command order (RFC 2449 6.6).
 *
 * The maildrop is a snapshot of INBOX taken at login (UID and size of each
 * message). Deletion marks live in the snapshot; they reach the store only at QUIT
 * in the TRANSACTION state (RFC 1939 6), in one store_message_expunge call whose
 * completion is awaited before "+OK". One POP3 session per account holds the
 * maildrop at a time (RFC 1939 8: exclusive-access lock), kept behind
 * pop3/pop3_lock.h together with the last login time for LOGIN-DELAY. */
#include "pop3/pop3_session.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth_exchange.h"
#include "auth/sasl.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "net/line_session.h"
#include "net/tls.h"
#include "pop3/pop3_lock.h"
#include "pop3/pop3_parse.h"
#include "store/blob.h"
#include "store/store.h"

/* Stop taking input while this much output is unsent (a pipelining client that
 * does not read), and resume once it is down to POP3_OUTPUT_LOW. */
#define POP3_OUTPUT_HIGH 65536
#define POP3_OUTPUT_LOW 16384
/* Most input buffered before it is processed. */
#define POP3_INPUT_HIGH 65536

enum pop3_state {
	POP3_STATE_AUTHORIZATION, /* RFC 1939 4 */
	POP3_STATE_SASL,          /* AUTHORIZATION, reading AUTH responses (RFC 5034 4) */
	POP3_STATE_TRANSACTION,   /* RFC 1939 5 */
	POP3_STATE_UPDATE,        /* RFC 1939 6: QUIT given, deletions being made durable */
	POP3_STATE_CLOSED,        /* goodbye sent, output flushing */
};

static const char *const pop3_state_names[] = {"authorization", "sasl", "transaction", "update",
                                               "closed"};

/* Copied from the config when the session starts, so SIGHUP can swap configs. */
struct pop3_limits {
	unsigned max_errors;
	unsigned login_delay;
	unsigned expire;
	bool allow_plaintext_on_loopback;
};

struct pop3_msg {
	uint32_t uid;
	uint64_t size;
	bool deleted;
	bool has_blob;           /* blob holds the id of the message's bytes */
	unsigned char blob[32];  /* the blob id (hex SHA-256) as bytes */
};

struct pop3_session {
	struct conn *c;
	struct pop3_limits lim;
	enum pop3_state state;
	struct line_session *ls; /* input, replies, timeouts (net/line_session.h) */
	bool busy;           /* a worker job of the session is running */
	bool auth_busy;      /* the exchange's lookup or failure delay is running */
	bool stopping;       /* server shutdown: end once the current job is done */
	/* authentication */
	char *user;               /* USER name waiting for PASS */
	struct auth_exchange *auth; /* the last exchange (AUTH, or PASS as PLAIN) */
	/* the maildrop */
	char *account; /* authenticated account */
	bool locked;   /* holds account's maildrop lock */
	struct pop3_msg *msgs;
	uint32_t nmsgs;
	uint32_t uidvalidity;
	uint32_t ndeleted;
	uint64_t total_size, deleted_size;
	struct pop3_fetch *fetch; /* the RETR/TOP replies being streamed (parked) */
};


/* ---- the maildrop lock and login times (pop3/pop3_lock.h: shared by every loop,
 * thread-safe) ---- */

static void pop3_lock_drop(struct pop3_session *s)
{
	if (!s->locked)
		return;
	s->locked = false;
	struct pop3_lock *l = pop3_lock_default();
	if (l != NULL)
		pop3_lock_release(l, s->account, s->lim.login_delay, server_now_ms());
	log_debug(s->c->sid, "event=pop3-unlock user=%s", s->account);
}

void pop3_session_cleanup(void)
{
	pop3_lock_default_free();
}

/* ---- state and replies ---- */

static void pop3_session_set_state(struct pop3_session *s, enum pop3_state state)
{
	if (s->state == state)
		return;
	log_debug(s->c->sid, "event=state old=%s new=%s", pop3_state_names[s->state],
	          pop3_state_names[state]);
	s->state = state;
	/* RFC 2449 4: 255 octets including CRLF; RFC 5034 4 for AUTH responses */
	line_session_set_line_max(s->ls, state == POP3_STATE_SASL ? POP3_AUTH_LINE_MAX
	                                                           : POP3_LINE_MAX);
}

static void pop3_reply(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_session_vreply(s->ls, fmt, ap);
	va_end(ap);
}

/* A reply to a client mistake: counted towards max_errors (checked before the next
 * command is taken). */
static void pop3_reply_error(struct pop3_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void pop3_reply_error(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_session_verror(s->ls, fmt, ap);
	va_end(ap);
}

/* Sends a final reply and ends the session once it is written. */
static void pop3_session_goodbye(struct pop3_session *s, const char *reply)
{
	if (s->state == POP3_STATE_CLOSED || s->c->dead)
		return;
	pop3_session_set_state(s, POP3_STATE_CLOSED);
	line_session_goodbye(s->ls, reply);
}

/* True when the session can take no more replies. */
static bool pop3_session_gone(const struct pop3_session *s)
{
	return line_session_gone(s->ls) || s->state == POP3_STATE_CLOSED;
}

static void pop3_session_park(struct pop3_session *s)
{
	s->busy = true;
	line_session_park(s->ls);
}

static void pop3_session_unpark(struct pop3_session *s)
{
	s->busy = false;
	if (pop3_session_gone(s))
		return;
	if (s->stopping && s->state != POP3_STATE_UPDATE) {
		pop3_session_goodbye(s, "-ERR [SYS/TEMP] Shutting down");
		return;
	}
	line_session_unpark(s->ls); /* pipelined input that arrived meanwhile */
}

/* ---- guards ---- */

/* USER/PASS and AUTH (any mechanism): inside TLS, or on loopback when the admin
 * allowed it (RFC 2595 2.2: no passwords in the clear). */
static bool pop3_plaintext_ok(const struct pop3_session *s)
{
	return s->c->ssl != NULL || (s->lim.allow_plaintext_on_loopback && conn_is_loopback(s->c));
}

static bool pop3_need_plaintext_ok(struct pop3_session *s)
{
	if (pop3_plaintext_ok(s))
		return true;
	pop3_reply_error(s, "-ERR [AUTH] Plaintext authentication disallowed without TLS");
	return false;
}

static bool pop3_need_no_args(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (cmd->argc == 0)
		return true;
	pop3_reply_error(s, "-ERR Syntax error");
	return false;
}

/* A message number argument: the index of a message not marked deleted, or -1
 * after replying. */
static long pop3_need_msg(struct pop3_session *s, const char *arg, size_t len)
{
	uint32_t n;
	if (pop3_parse_number(arg, len, &n) < 0 || n == 0 || n > s->nmsgs) {
		pop3_reply_error(s, "-ERR No such message");
		return -1;
	}
	/* RFC 1939 5: a message marked deleted may not be referred to */
	if (s->msgs[n - 1].deleted) {
		pop3_reply_error(s, "-ERR Message %u already deleted", n);
		return -1;
	}
	return (long)n - 1;
}

/* ---- the maildrop at login ---- */

struct pop3_open_job {
	struct pop3_session *s;
	struct store *store;
	char *account;
	struct pop3_msg *msgs;
	size_t n, cap;
	uint32_t uidvalidity;
	bool have_inbox;
	bool oom;
	int result; /* 1 ok, 0 no account or INBOX, -1 error */
	char *error;
};

static void pop3_open_mailbox_cb(void *ctx, const struct store_mailbox_info *mb)
{
	struct pop3_open_job *j = ctx;
	if (strcmp(mb->name, "INBOX") == 0) {
		j->uidvalidity = mb->uidvalidity;
		j->have_inbox = true;
	}
}

static void pop3_open_message_cb(void *ctx, const struct store_message_info *m)
{
	struct pop3_open_job *j = ctx;
	if (j->oom)
		return;
	if (j->n == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 64;
		struct pop3_msg *p =
		    cap > UINT32_MAX ? NULL : reallocarray(j->msgs, cap, sizeof(*p));
		if (p == NULL) {
			j->oom = true;
			return;
		}
		j->msgs = p;
		j->cap = cap;
	}
	struct pop3_msg *pm = &j->msgs[j->n++];
	*pm = (struct pop3_msg){.uid = m->uid, .size = m->size};
	/* kept as bytes (half the memory of the hex form); without a valid id RETR
	 * asks the database */
	if (m->blob_id != NULL && blob_id_valid(m->blob_id)) {
		for (size_t k = 0; k < sizeof(pm->blob); k++) {
			const char *h = m->blob_id + 2 * k;
			unsigned hi = h[0] <= '9' ? (unsigned)(h[0] - '0') : (unsigned)(h[0] - 'a' + 10);
			unsigned lo = h[1] <= '9' ? (unsigned)(h[1] - '0') : (unsigned)(h[1] - 'a' + 10);
			pm->blob[k] = (unsigned char)(hi << 4 | lo);
		}
		pm->has_blob = true;
	}
}

static void pop3_open_job_run(void *arg)
{
	struct pop3_open_job *j = arg;
	int r = store_mailbox_list(j->store, j->account, pop3_open_mailbox_cb, j, &j->error);
	if (r > 0 && !j->have_inbox)
		r = 0;
	if (r > 0)
		r = store_message_list(j->store, j->account, "INBOX", pop3_open_message_cb, j,
		                       &j->error);
	if (r > 0 && j->oom) {
		r = -1;
		j->error = strdup("out of memory");
	}
	j->result = r;
}

static void pop3_open_job_done(void *arg)
{
	struct pop3_open_job *j = arg;
	struct pop3_session *s = j->s;
	if (!pop3_session_gone(s)) {
		if (j->result > 0) {
			s->msgs = j->msgs;
			s->nmsgs = (uint32_t)j->n;
			j->msgs = NULL;
			s->uidvalidity = j->uidvalidity;
			s->total_size = 0;
			for (uint32_t i = 0; i < s->nmsgs; i++)
				s->total_size += s->msgs[i].size;
			struct pop3_lock *l = pop3_lock_default();
			if (l != NULL)
				pop3_lock_note_login(l, s->account, server_now_ms());
			pop3_session_set_state(s, POP3_STATE_TRANSACTION);
			log_info(s->c->sid, "event=maildrop user=%s messages=%u size=%llu",
			         s->account, s->nmsgs, (unsigned long long)s->total_size);
			pop3_reply(s, "+OK Logged in, %u messages (%llu octets)", s->nmsgs,
			           (unsigned long long)s->total_size);
		} else {
			char esc[600];
			log_error(s->c->sid, "event=maildrop-failed user=%s error=\"%s\"",
			          s->account,
			          j->result == 0 ? "no INBOX"
			                         : log_escape_str(j->error, esc, sizeof(esc)));
			pop3_lock_drop(s);
			free(s->account);
			s->account = NULL;
			pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		}
	}
	free(j->msgs);
	free(j->account);
	free(j->error);
	free(j);
	pop3_session_unpark(s);
}

/* Authenticated as account (malloc'd, taken over): lock the maildrop and take the
 * INBOX snapshot. */
static void pop3_login(struct pop3_session *s, char *account)
{
	struct pop3_lock *l = pop3_lock_default();
	enum pop3_lock_result lr =
	    l != NULL ? pop3_lock_acquire(l, account, s->lim.login_delay, server_now_ms())
	              : POP3_LOCK_ERROR;
	if (lr == POP3_LOCK_IN_USE) {
		/* RFC 1939 8 / RFC 2449 8.1.1 */
		log_info(s->c->sid, "event=login-refused user=%s reason=in-use", account);
		free(account);
		pop3_reply(s, "-ERR [IN-USE] Mailbox is locked by another POP3 session");
		return;
	}
	if (lr == POP3_LOCK_TOO_SOON) {
		/* RFC 2449 6.5, 8.1.2 */
		log_info(s->c->sid, "event=login-refused user=%s reason=login-delay", account);
		free(account);
		pop3_reply(s, "-ERR [LOGIN-DELAY] Minimum time between logins not reached");
		return;
	}
	if (lr != POP3_LOCK_OK) {
		log_error(s->c->sid, "event=login-failed user=%s error=\"lock table full\"", account);
		free(account);
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		return;
	}
	s->locked = true;
	s->account = account;
	struct pop3_open_job *j = calloc(1, sizeof(*j));
	if (j != NULL) {
		j->s = s;
		j->store = s->c->srv->store;
		j->account = strdup(account);
	}
	if (j == NULL || j->account == NULL ||
	    conn_submit(s->c, pop3_open_job_run, pop3_open_job_done, j) < 0) {
		if (j != NULL)
			free(j->account);
		free(j);
		pop3_lock_drop(s);
		free(s->account);
		s->account = NULL;
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		return;
	}
	pop3_session_park(s);
}

/* ---- AUTH (RFC 5034) and USER/PASS: the POP3 framing of the shared exchange
 * (auth/auth_exchange.h) ---- */

static void pop3_auth_challenge(void *ctx, const char *b64)
{
	struct pop3_session *s = ctx;
	pop3_reply(s, "+ %s", b64); /* RFC 5034 4 */
	pop3_session_set_state(s, POP3_STATE_SASL);
}

static void pop3_auth_success(void *ctx, const char *account)
{
	struct pop3_session *s = ctx;
	pop3_session_set_state(s, POP3_STATE_AUTHORIZATION);
	char *copy = strdup(account);
	if (copy == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		return;
	}
	pop3_login(s, copy); /* parks the session for the INBOX snapshot */
}

static void pop3_auth_failure(void *ctx, enum auth_outcome outcome)
{
	struct pop3_session *s = ctx;
	pop3_session_set_state(s, POP3_STATE_AUTHORIZATION);
	switch (outcome) {
	case AUTH_MALFORMED:
		/* broken mechanism syntax is answered like wrong credentials (no hint
		 * to a guesser), and counts twice towards max_errors */
		line_session_count_error(s->ls);
		/* fall through */
	case AUTH_FAILED:
		pop3_reply_error(s, "-ERR [AUTH] Authentication failed");
		break;
	case AUTH_UNDECODABLE:
		pop3_reply_error(s, "-ERR Cannot decode response");
		break;
	case AUTH_CANCELLED: /* RFC 5034 4 */
		pop3_reply_error(s, "-ERR Authentication cancelled");
		break;
	case AUTH_THROTTLED:
		pop3_reply(s, "-ERR [SYS/TEMP] Too many failed authentications, try again later");
		break;
	case AUTH_TEMPFAIL:
	default:
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		break;
	}
}

/* The exchange's lookup or failure delay. pop3_login may have parked the session
 * for its own job from inside the success callback: only unpark when that is not
 * the case. */
static void pop3_auth_busy(void *ctx, bool busy)
{
	struct pop3_session *s = ctx;
	s->auth_busy = busy;
	if (busy)
		line_session_park(s->ls);
	else if (!s->busy)
		pop3_session_unpark(s);
}

static const struct auth_exchange_ops pop3_auth_ops = {
    .challenge = pop3_auth_challenge,
    .success = pop3_auth_success,
    .failure = pop3_auth_failure,
    .busy = pop3_auth_busy,
};

/* A new exchange; NULL after replying when refused or out of memory. */
static struct auth_exchange *pop3_auth_new(struct pop3_session *s, enum sasl_mech mech,
                                           const char *label)
{
	if (auth_exchange_ip_refused(s->c)) {
		pop3_reply(s, "-ERR [SYS/TEMP] Too many failed authentications, try again later");
		return NULL;
	}
	unsigned char cb[32];
	bool have_cb = label == NULL && s->c->ssl != NULL && tls_channel_binding(s->c->ssl, cb) > 0;
	auth_exchange_free(&s->auth);
	s->auth = auth_exchange_new(s->c, mech, label, have_cb ? cb : NULL,
	                            have_cb ? sizeof(cb) : 0, &pop3_auth_ops, s);
	explicit_bzero(cb, sizeof(cb));
	if (s->auth == NULL)
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
	return s->auth;
}

/* ---- commands ---- */

static void pop3_cmd_capa(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!pop3_need_no_args(s, cmd))
		return;
	/* RFC 2449 5: capabilities of the AUTHORIZATION state are listed in both */
	struct evbuffer *out = line_session_output(s->ls);
	if (out == NULL)
		return;
	evbuffer_add_printf(out, "+OK Capability list follows\r\n"
	                         "TOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n");
	if (s->lim.expire == CONFIG_POP3_EXPIRE_NEVER)
		evbuffer_add_printf(out, "EXPIRE NEVER\r\n");
	else
		evbuffer_add_printf(out, "EXPIRE %u\r\n", s->lim.expire);
	if (s->lim.login_delay > 0)
		evbuffer_add_printf(out, "LOGIN-DELAY %u\r\n", s->lim.login_delay);
	evbuffer_add_printf(out, "IMPLEMENTATION hermod\r\n");
	if (s->c->ssl == NULL && s->c->loop->tls != NULL)
		evbuffer_add_printf(out, "STLS\r\n");
	if (pop3_plaintext_ok(s)) {
		unsigned char cb[32];
		bool have_cb = s->c->ssl != NULL && tls_channel_binding(s->c->ssl, cb) > 0;
		explicit_bzero(cb, sizeof(cb));
		evbuffer_add_printf(out, "USER\r\nSASL %s\r\n",
		                    sasl_mechs_advertised(true, have_cb));
	}
	evbuffer_add(out, ".\r\n", 3);
}

static void pop3_cmd_stls(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (s->c->ssl != NULL || s->c->loop->tls == NULL) {
		pop3_reply_error(s, "-ERR Command not valid in this state");
		return;
	}
	if (!pop3_need_no_args(s, cmd))
		return;
	pop3_reply(s, "+OK Begin TLS negotiation");
	/* RFC 2595 4: buffered input is discarded there; on failure the connection
	 * is closed (the session stays until proto_ops.free) */
	if (line_session_start_tls(s->ls) < 0)
		return;
	/* forget what the client said before TLS */
	free(s->user);
	s->user = NULL;
	log_info(s->c->sid, "event=stls");
}

static void pop3_cmd_user(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!pop3_need_plaintext_ok(s))
		return;
	if (cmd->argc != 1 || cmd->argl[0] > SASL_FIELD_MAX) {
		pop3_reply_error(s, "-ERR Syntax error");
		return;
	}
	free(s->user);
	s->user = strndup(cmd->argv[0], cmd->argl[0]);
	if (s->user == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		return;
	}
	pop3_reply(s, "+OK");
}

/* RFC 1939 7 PASS: checked as a SASL PLAIN message "\0user\0password" (RFC 4616),
 * so there is one password path for every protocol and mechanism. */
static void pop3_cmd_pass(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!pop3_need_plaintext_ok(s))
		return;
	if (s->user == NULL) {
		pop3_reply_error(s, "-ERR Command not valid in this state");
		return;
	}
	if (cmd->args_len == 0) {
		pop3_reply_error(s, "-ERR Syntax error");
		return;
	}
	/* RFC 1939 7: after a PASS, successful or not, USER must be given again */
	char *user = s->user;
	s->user = NULL;
	size_t ulen = strlen(user);
	size_t mlen = ulen + cmd->args_len + 2; /* both bounded by POP3_LINE_MAX */
	unsigned char *msg = malloc(mlen);
	if (msg == NULL || pop3_auth_new(s, SASL_MECH_PLAIN, "USER") == NULL) {
		if (msg == NULL)
			pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		free(msg);
		free(user);
		return;
	}
	msg[0] = '\0';
	memcpy(msg + 1, user, ulen);
	msg[1 + ulen] = '\0';
	memcpy(msg + 2 + ulen, cmd->args, cmd->args_len);
	free(user);
	auth_exchange_start_raw(s->auth, msg, mlen);
	explicit_bzero(msg, mlen);
	free(msg);
}

static void pop3_cmd_auth(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!pop3_need_plaintext_ok(s))
		return;
	if (cmd->argc == 0 || cmd->argc > 2) {
		pop3_reply_error(s, "-ERR Syntax error");
		return;
	}
	int mech = sasl_mech_from_name(cmd->argv[0], cmd->argl[0]);
	unsigned char cb[32];
	bool have_cb = s->c->ssl != NULL && tls_channel_binding(s->c->ssl, cb) > 0;
	explicit_bzero(cb, sizeof(cb));
	if (mech < 0 || (mech == SASL_MECH_SCRAM_SHA_256_PLUS && !have_cb)) {
		pop3_reply_error(s, "-ERR Unrecognized authentication type");
		return;
	}
	free(s->user);
	s->user = NULL;
	if (pop3_auth_new(s, (enum sasl_mech)mech, NULL) == NULL)
		return;
	/* RFC 5034 4: an initial response "=" is an empty one */
	if (cmd->argc == 1)
		auth_exchange_start(s->auth, NULL, 0);
	else
		auth_exchange_start(s->auth, cmd->argv[1], cmd->argl[1]);
}

static void pop3_cmd_stat(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!pop3_need_no_args(s, cmd))
		return;
	pop3_reply(s, "+OK %u %llu", s->nmsgs - s->ndeleted,
	           (unsigned long long)(s->total_size - s->deleted_size));
}

static void pop3_cmd_list_uidl(struct pop3_session *s, const struct pop3_command *cmd, bool uidl)
{
	if (cmd->argc > 1) {
		pop3_reply_error(s, "-ERR Syntax error");
		return;
	}
	if (cmd->argc == 1) {
		long i = pop3_need_msg(s, cmd->argv[0], cmd->argl[0]);
		if (i < 0)
			return;
		if (uidl)
			pop3_reply(s, "+OK %ld %08X%08X", i + 1, s->msgs[i].uid, s->uidvalidity);
		else
			pop3_reply(s, "+OK %ld %llu", i + 1, (unsigned long long)s->msgs[i].size);
		return;
	}
	struct evbuffer *out = line_session_output(s->ls);
	if (out == NULL)
		return;
	if (uidl)
		evbuffer_add_printf(out, "+OK\r\n");
	else
		evbuffer_add_printf(out, "+OK %u messages (%llu octets)\r\n",
		                    s->nmsgs - s->ndeleted,
		                    (unsigned long long)(s->total_size - s->deleted_size));
	for (uint32_t i = 0; i < s->nmsgs; i++) {
		if (s->msgs[i].deleted)
			continue;
		/* RFC 1939 7 UIDL: 1-70 characters 0x21-0x7E; Dovecot's %08X%08X format */
		if (uidl)
			evbuffer_add_printf(out, "%u %08X%08X\r\n", i + 1, s->msgs[i].uid,
			                    s->uidvalidity);
		else
			evbuffer_add_printf(out, "%u %llu\r\n", i + 1,
			                    (unsigned long long)s->msgs[i].size);
	}
	evbuffer_add(out, ".\r\n", 3);
}

static void pop3_cmd_list(struct pop3_session *s, const struct pop3_command *cmd)
{
	pop3_cmd_list_uidl(s, cmd, false);
}

static void pop3_cmd_uidl(struct pop3_session *s, const struct pop3_command *cmd)
{
	pop3_cmd_list_uidl(s, cmd, true);
}

/* RETR and TOP: the replies are streamed from the message's blob, read in bounded
 * steps. The bytes come from the blob named in the login snapshot, without a
 * database query (blobs are immutable), through a file descriptor and byte range
 * (store_blob_open, pread). Pipelined RETR/TOP lines already buffered behind the
 * one being run are taken into the same retrieval (one worker round trip for a
 * whole window of small messages, RFC 2449 6.6), their replies written in order.
 *
 * One step (a worker job) reads at most POP3_FETCH_STEP octets of messages and
 * renders their dot-stuffed replies; the loop appends the rendered bytes to the
 * output and starts the next step once unsent output is down to POP3_FETCH_LOW
 * (line_session_notify_drain). A session's memory for a retrieval is therefore
 * bounded (about one step being rendered, the read buffer and the output not yet
 * taken by the socket), whatever the message sizes and the number of pipelined
 * commands. The session stays parked from the first step to the last. */
#define POP3_BATCH_MAX 64
#define POP3_FETCH_STEP (256u << 10)
#define POP3_FETCH_LOW (256u << 10)
/* TOP reads this much at a time, so that it reads little past its cut. */
#define POP3_TOP_READ (16u << 10)

struct pop3_fetch_item {
	uint32_t uid;
	uint32_t n; /* message number */
	uint64_t size;
	bool top;
	uint32_t lines;
	char blob_id[BLOB_ID_LEN + 1]; /* "" when the snapshot has none */
	int result;                    /* 1 read, 0 expunged since login, -1 error */
	char *error;
	uint64_t sent; /* octets of the message read for the reply */
};

/* Touched by the worker while a step runs and by the loop between steps only. */
struct pop3_fetch {
	struct pop3_session *s;
	struct store *store;
	char *account;
	size_t n;      /* items */
	size_t cur;    /* the item being sent */
	size_t logged; /* items before this one are logged */
	bool opened;   /* items[cur]'s source is open and its first line rendered */
	struct store_blob_range r; /* the source (fd -1 when not open) */
	char *data;                /* or: the message read from the database */
	size_t data_len;
	uint64_t pos; /* octets of the source read so far */
	struct pop3_reply_body body;
	char *chunk;    /* the read buffer (POP3_FETCH_STEP), allocated once */
	struct buf out; /* rendered by the last step, handed to the output */
	bool broken;    /* a read or an allocation failed mid-reply */
	char *error;    /* why (for the log) */
	struct pop3_fetch_item items[POP3_BATCH_MAX];
};

static void pop3_fetch_emit(void *ctx, const char *data, size_t len, bool from_input)
{
	struct pop3_fetch *f = ctx;
	if (!f->broken && buf_append(&f->out, data, len) < 0) {
		f->broken = true;
		f->error = strdup("out of memory");
	}
}

static void pop3_fetch_source_close(struct pop3_fetch *f)
{
	store_blob_range_close(&f->r);
	free(f->data);
	f->data = NULL;
	f->data_len = 0;
	f->opened = false;
	f->pos = 0;
}

/* Opens items[cur] and renders its first line; false when the reply is complete
 * with it (an -ERR). */
static bool pop3_fetch_open(struct pop3_fetch *f, struct pop3_fetch_item *it)
{
	f->r = (struct store_blob_range){.fd = -1};
	it->result = 0;
	if (it->blob_id[0] != '\0')
		it->result = store_blob_open(f->store, it->blob_id, &f->r, &it->error);
	if (it->result == 0) {
		/* the blob is gone (or the snapshot names none): ask the database whether
		 * the message is there (the usual answer: expunged and swept since login).
		 * This rare path reads the message whole. */
		free(it->error);
		it->error = NULL;
		it->result = store_message_get(f->store, f->account, "INBOX", it->uid, &f->data,
		                               &f->data_len, &it->error);
	}
	char line[64];
	if (it->result > 0) {
		if (it->top)
			snprintf(line, sizeof(line), "+OK\r\n");
		else /* RFC 1939 7: the count is the stored size (CRLF form) */
			snprintf(line, sizeof(line), "+OK %llu octets\r\n",
			         (unsigned long long)it->size);
		pop3_fetch_emit(f, line, strlen(line), false);
		pop3_reply_body_init(&f->body, it->top, it->lines);
		f->opened = true;
		f->pos = 0;
		return true;
	}
	if (it->result == 0) {
		/* expunged by IMAP (or the CLI) since the snapshot */
		static const char gone[] = "-ERR [SYS/PERM] Message was removed by another session\r\n";
		pop3_fetch_emit(f, gone, sizeof(gone) - 1, false);
	} else {
		static const char fail[] = "-ERR [SYS/TEMP] Temporary failure, try again later\r\n";
		pop3_fetch_emit(f, fail, sizeof(fail) - 1, false);
	}
	pop3_fetch_source_close(f);
	return false;
}

/* Reads want octets at the source's offset pos into f->chunk. */
static const char *pop3_fetch_read(struct pop3_fetch *f, size_t want)
{
	if (f->data != NULL)
		return f->data + f->pos;
	if (f->chunk == NULL && (f->chunk = malloc(POP3_FETCH_STEP)) == NULL) {
		f->broken = true;
		f->error = strdup("out of memory");
		return NULL;
	}
	size_t got = 0;
	while (got < want) {
		ssize_t r = pread(f->r.fd, f->chunk + got, want - got,
		                  (off_t)(f->r.off + f->pos + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			f->broken = true;
			f->error = strdup(r < 0 ? strerror(errno) : "blob shorter than its size");
			return NULL;
		}
		got += (size_t)r;
	}
	return f->chunk;
}

/* One step, on a worker: reads and renders up to POP3_FETCH_STEP octets of the
 * messages from items[cur] on (the loop only hands the bytes to the socket, so a
 * download uses every core). */
static void pop3_fetch_step_run(void *arg)
{
	struct pop3_fetch *f = arg;
	buf_init(&f->out, 0);
	size_t budget = POP3_FETCH_STEP;
	while (f->cur < f->n && !f->broken && budget > 0) {
		struct pop3_fetch_item *it = &f->items[f->cur];
		if (!f->opened && !pop3_fetch_open(f, it)) {
			f->cur++;
			continue;
		}
		uint64_t total = f->data != NULL ? f->data_len : f->r.len;
		while (f->pos < total && !f->body.done && budget > 0 && !f->broken) {
			size_t want = budget;
			if (it->top && want > POP3_TOP_READ)
				want = POP3_TOP_READ;
			if (want > total - f->pos)
				want = (size_t)(total - f->pos);
			const char *p = pop3_fetch_read(f, want);
			if (p == NULL)
				break;
			pop3_reply_body_feed(&f->body, p, want, pop3_fetch_emit, f);
			f->pos += want;
			budget -= want;
		}
		if (f->broken || (f->pos < total && !f->body.done))
			break; /* budget used up: the next step goes on from here */
		pop3_reply_body_finish(&f->body, pop3_fetch_emit, f);
		it->sent = f->pos;
		pop3_fetch_source_close(f);
		f->cur++;
	}
}

static void pop3_fetch_item_log(struct pop3_session *s, const struct pop3_fetch_item *it)
{
	if (it->result > 0) {
		log_debug(s->c->sid, "event=%s msg=%u uid=%u size=%llu read=%llu",
		          it->top ? "top" : "retr", it->n, it->uid, (unsigned long long)it->size,
		          (unsigned long long)it->sent);
	} else if (it->result == 0) {
		log_info(s->c->sid, "event=retr-gone msg=%u uid=%u", it->n, it->uid);
	} else {
		char esc[600];
		log_error(s->c->sid, "event=retr-failed uid=%u error=\"%s\"", it->uid,
		          log_escape_str(it->error, esc, sizeof(esc)));
	}
}

static void pop3_fetch_out_free(const void *data, size_t len, void *extra)
{
	free(extra);
}

static void pop3_fetch_free(struct pop3_fetch **fp)
{
	struct pop3_fetch *f = *fp;
	if (f == NULL)
		return;
	pop3_fetch_source_close(f);
	for (size_t k = 0; k < f->n; k++)
		free(f->items[k].error);
	free(f->chunk);
	buf_free(&f->out);
	free(f->account);
	free(f->error);
	free(f);
	*fp = NULL;
}

static void pop3_fetch_step_done(void *arg);

/* Starts the next step; when it cannot, the connection is closed. */
static void pop3_fetch_step(struct pop3_session *s)
{
	struct pop3_fetch *f = s->fetch;
	if (conn_submit(s->c, pop3_fetch_step_run, pop3_fetch_step_done, f) > 0)
		return;
	/* a reply is half sent: it cannot be completed, nor can the next ones be
	 * answered in order */
	log_error(s->c->sid, "event=retr-failed uid=%u error=\"cannot queue the read\"",
	          f->items[f->cur].uid);
	pop3_fetch_free(&s->fetch);
	s->busy = false;
	pop3_session_set_state(s, POP3_STATE_CLOSED);
	line_session_end(s->ls);
}

static void pop3_fetch_step_done(void *arg)
{
	struct pop3_fetch *f = arg;
	struct pop3_session *s = f->s;
	if (pop3_session_gone(s)) {
		pop3_fetch_free(&s->fetch);
		pop3_session_unpark(s);
		return;
	}
	size_t done = f->cur;
	for (; f->logged < done; f->logged++)
		pop3_fetch_item_log(s, &f->items[f->logged]);
	size_t len = 0;
	char *data = buf_steal(&f->out, &len);
	struct evbuffer *out = line_session_output(s->ls);
	if (data != NULL && len > 0) {
		if (out != NULL &&
		    evbuffer_add_reference(out, data, len, pop3_fetch_out_free, data) == 0) {
			data = NULL; /* the output buffer owns it now */
		} else if (!f->broken) {
			f->broken = true;
			f->error = strdup("out of memory");
		}
	}
	free(data);
	if (f->broken) {
		char esc[600];
		log_error(s->c->sid, "event=retr-failed uid=%u error=\"%s\"", f->items[f->cur].uid,
		          log_escape_str(f->error != NULL ? f->error : "out of memory", esc,
		                         sizeof(esc)));
		pop3_fetch_free(&s->fetch);
		s->busy = false;
		pop3_session_set_state(s, POP3_STATE_CLOSED);
		line_session_end(s->ls); /* what was sent goes out, then the connection closes */
		return;
	}
	if (f->cur == f->n) {
		pop3_fetch_free(&s->fetch);
		pop3_session_unpark(s);
		return;
	}
	/* the next step once the client has taken most of this one */
	line_session_notify_drain(s->ls, POP3_FETCH_LOW);
}

static void pop3_ls_on_drain(void *ctx)
{
	struct pop3_session *s = ctx;
	if (s->fetch != NULL && !pop3_session_gone(s))
		pop3_fetch_step(s);
}

static void pop3_fetch_add(struct pop3_session *s, struct pop3_fetch *f, long i, bool top,
                           uint32_t lines)
{
	struct pop3_fetch_item *it = &f->items[f->n++];
	it->uid = s->msgs[i].uid;
	it->n = (uint32_t)i + 1;
	it->size = s->msgs[i].size;
	it->top = top;
	it->lines = lines;
	if (s->msgs[i].has_blob) {
		static const char hex[] = "0123456789abcdef";
		for (size_t k = 0; k < sizeof(s->msgs[i].blob); k++) {
			it->blob_id[2 * k] = hex[s->msgs[i].blob[k] >> 4];
			it->blob_id[2 * k + 1] = hex[s->msgs[i].blob[k] & 15];
		}
		it->blob_id[BLOB_ID_LEN] = '\0';
	}
}

/* Takes the next buffered line into the retrieval when it is a complete, valid
 * RETR or TOP of a message not marked deleted and the batch has room; anything
 * else (another command, a malformed or overlong line, an error to answer) stays
 * in the input untouched for the normal path. */
static bool pop3_fetch_take_line(struct pop3_session *s, struct pop3_fetch *f,
                                 char line[POP3_LINE_MAX + 1])
{
	if (f->n == POP3_BATCH_MAX || line_session_discarding(s->ls))
		return false;
	struct evbuffer *in = line_session_input(s->ls);
	if (in == NULL)
		return false;
	size_t eol_len = 0;
	struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (p.pos < 0 || (size_t)p.pos + 1 > POP3_LINE_MAX)
		return false;
	size_t linelen = (size_t)p.pos;
	if (evbuffer_copyout(in, line, linelen) != (ev_ssize_t)linelen)
		return false;
	if (linelen > 0 && line[linelen - 1] == '\r')
		linelen--;
	else if (linelen + 2 > POP3_LINE_MAX)
		return false;
	line[linelen] = '\0';
	struct pop3_command cmd;
	uint32_t num, lines = 0;
	bool top;
	if (pop3_command_parse(line, linelen, &cmd) < 0)
		return false;
	if (cmd.verb == POP3_VERB_RETR && cmd.argc == 1)
		top = false;
	else if (cmd.verb == POP3_VERB_TOP && cmd.argc == 2 &&
	         pop3_parse_count(cmd.argv[1], cmd.argl[1], &lines) > 0)
		top = true;
	else
		return false;
	if (pop3_parse_number(cmd.argv[0], cmd.argl[0], &num) < 0 || num == 0 || num > s->nmsgs ||
	    s->msgs[num - 1].deleted)
		return false;
	line_session_drain_wiped(in, (size_t)p.pos + eol_len);
	pop3_fetch_add(s, f, (long)num - 1, top, lines);
	return true;
}

/* The copy of the line is wiped whatever it was: a line left for the normal
 * path may be a pipelined PASS or AUTH response. */
static bool pop3_fetch_take_next(struct pop3_session *s, struct pop3_fetch *f)
{
	char line[POP3_LINE_MAX + 1];
	bool taken = pop3_fetch_take_line(s, f, line);
	explicit_bzero(line, sizeof(line));
	return taken;
}

static void pop3_fetch(struct pop3_session *s, long i, bool top, uint32_t lines)
{
	struct pop3_fetch *f = calloc(1, sizeof(*f));
	if (f != NULL) {
		f->s = s;
		f->store = s->c->srv->store;
		f->account = strdup(s->account);
		f->r.fd = -1;
		buf_init(&f->out, 0);
	}
	if (f == NULL || f->account == NULL) {
		pop3_fetch_free(&f);
		pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		return;
	}
	pop3_fetch_add(s, f, i, top, lines);
	while (pop3_fetch_take_next(s, f))
		;
	if (conn_submit(s->c, pop3_fetch_step_run, pop3_fetch_step_done, f) < 0) {
		/* every command taken answers, in order */
		for (size_t k = 0; k < f->n; k++)
			pop3_reply(s, "-ERR [SYS/TEMP] Temporary failure, try again later");
		pop3_fetch_free(&f);
		return;
	}
	s->fetch = f;
	pop3_session_park(s);
}

static void pop3_cmd_retr(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (cmd->argc != 1) {
		pop3_reply_error(s, "-ERR Syntax error");
		return;
	}
	long i = pop3_need_msg(s, cmd->argv[0], cmd->argl[0]);
	if (i >= 0)
		pop3_fetch(s, i, false, 0);
}

static void pop3_cmd_top(struct pop3_session *s, const struct pop3_command *cmd)
{
	uint32_t lines;
	if (cmd->argc != 2 || pop3_parse_count(cmd->argv[1], cmd->argl[1], &lines) < 0) {
		pop3_reply_error(s, "-ERR Syntax error");
		return;
	}
	long i = pop3_need_msg(s, cmd->argv[0], cmd->argl[0]);
	if (i >= 0)
		pop3_fetch(s, i, true, lines);
}

static void pop3_cmd_dele(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (cmd->argc != 1) {
		pop3_reply_error(s, "-ERR Syntax error");
		return;
	}
	long i = pop3_need_msg(s, cmd->argv[0], cmd->argl[0]);
	if (i < 0)
		return;
	s->msgs[i].deleted = true;
	s->ndeleted++;
	s->deleted_size += s->msgs[i].size;
	pop3_reply(s, "+OK Message %ld deleted", i + 1);
}

static void pop3_cmd_rset(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!pop3_need_no_args(s, cmd))
		return;
	for (uint32_t i = 0; i < s->nmsgs; i++)
		s->msgs[i].deleted = false;
	s->ndeleted = 0;
	s->deleted_size = 0;
	pop3_reply(s, "+OK %u messages (%llu octets)", s->nmsgs, (unsigned long long)s->total_size);
}

static void pop3_cmd_noop(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (!pop3_need_no_args(s, cmd))
		return;
	pop3_reply(s, "+OK");
}

/* QUIT in TRANSACTION: the UPDATE state (RFC 1939 6) */
struct pop3_expunge_job {
	struct pop3_session *s;
	struct store *store;
	char *account;
	uint32_t *uids;
	size_t n;
	int result;
	char *error;
};

static void pop3_expunge_job_run(void *arg)
{
	struct pop3_expunge_job *j = arg;
	j->result = store_message_expunge(j->store, j->account, "INBOX", j->uids, j->n, &j->error);
}

static void pop3_expunge_job_done(void *arg)
{
	struct pop3_expunge_job *j = arg;
	struct pop3_session *s = j->s;
	if (j->result >= 0) {
		log_info(s->c->sid, "event=quit user=%s deleted=%zu expunged=%d", j->account, j->n,
		         j->result);
		if (!pop3_session_gone(s)) {
			char reply[64];
			snprintf(reply, sizeof(reply), "+OK Bye, %zu messages deleted", j->n);
			pop3_session_goodbye(s, reply);
		}
	} else {
		char esc[600];
		log_error(s->c->sid, "event=expunge-failed user=%s error=\"%s\"", j->account,
		          log_escape_str(j->error, esc, sizeof(esc)));
		if (!pop3_session_gone(s))
			pop3_session_goodbye(s, "-ERR [SYS/TEMP] Deleting messages failed");
	}
	free(j->uids);
	free(j->account);
	free(j->error);
	free(j);
	s->busy = false; /* UPDATE: the goodbye above ends the session */
}

static void pop3_cmd_quit(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (s->state == POP3_STATE_AUTHORIZATION) {
		pop3_session_goodbye(s, "+OK Bye");
		return;
	}
	pop3_session_set_state(s, POP3_STATE_UPDATE);
	if (s->ndeleted == 0) {
		log_info(s->c->sid, "event=quit user=%s deleted=0", s->account);
		pop3_session_goodbye(s, "+OK Bye, 0 messages deleted");
		return;
	}
	struct pop3_expunge_job *j = calloc(1, sizeof(*j));
	if (j != NULL) {
		j->s = s;
		j->store = s->c->srv->store;
		j->account = strdup(s->account);
		j->uids = reallocarray(NULL, s->ndeleted, sizeof(*j->uids));
	}
	if (j == NULL || j->account == NULL || j->uids == NULL) {
		if (j != NULL) {
			free(j->account);
			free(j->uids);
		}
		free(j);
		pop3_session_goodbye(s, "-ERR [SYS/TEMP] Deleting messages failed");
		return;
	}
	for (uint32_t i = 0; i < s->nmsgs; i++)
		if (s->msgs[i].deleted)
			j->uids[j->n++] = s->msgs[i].uid;
	if (conn_submit(s->c, pop3_expunge_job_run, pop3_expunge_job_done, j) < 0) {
		free(j->account);
		free(j->uids);
		free(j);
		pop3_session_goodbye(s, "-ERR [SYS/TEMP] Deleting messages failed");
		return;
	}
	pop3_session_park(s);
}

/* ---- the command table ---- */

#define POP3_IN_AUTHORIZATION (1u << 0)
#define POP3_IN_TRANSACTION (1u << 1)

struct pop3_command_def {
	enum pop3_verb verb;
	unsigned states; /* POP3_IN_* where the command is valid */
	void (*run)(struct pop3_session *s, const struct pop3_command *cmd);
};

static const struct pop3_command_def pop3_commands[] = {
    {POP3_VERB_CAPA, POP3_IN_AUTHORIZATION | POP3_IN_TRANSACTION, pop3_cmd_capa},
    {POP3_VERB_STLS, POP3_IN_AUTHORIZATION, pop3_cmd_stls},
    {POP3_VERB_USER, POP3_IN_AUTHORIZATION, pop3_cmd_user},
    {POP3_VERB_PASS, POP3_IN_AUTHORIZATION, pop3_cmd_pass},
    {POP3_VERB_AUTH, POP3_IN_AUTHORIZATION, pop3_cmd_auth},
    {POP3_VERB_QUIT, POP3_IN_AUTHORIZATION | POP3_IN_TRANSACTION, pop3_cmd_quit},
    {POP3_VERB_STAT, POP3_IN_TRANSACTION, pop3_cmd_stat},
    {POP3_VERB_LIST, POP3_IN_TRANSACTION, pop3_cmd_list},
    {POP3_VERB_UIDL, POP3_IN_TRANSACTION, pop3_cmd_uidl},
    {POP3_VERB_RETR, POP3_IN_TRANSACTION, pop3_cmd_retr},
    {POP3_VERB_TOP, POP3_IN_TRANSACTION, pop3_cmd_top},
    {POP3_VERB_DELE, POP3_IN_TRANSACTION, pop3_cmd_dele},
    {POP3_VERB_RSET, POP3_IN_TRANSACTION, pop3_cmd_rset},
    {POP3_VERB_NOOP, POP3_IN_TRANSACTION, pop3_cmd_noop},
};

static void pop3_session_command(struct pop3_session *s, const char *line, size_t len)
{
	struct pop3_command cmd;
	if (pop3_command_parse(line, len, &cmd) < 0) {
		pop3_reply_error(s, "-ERR Syntax error");
		return;
	}
	unsigned in = s->state == POP3_STATE_AUTHORIZATION ? POP3_IN_AUTHORIZATION
	              : s->state == POP3_STATE_TRANSACTION ? POP3_IN_TRANSACTION
	                                                   : 0;
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		const struct pop3_command_def *def = &pop3_commands[i];
		if (def->verb != cmd.verb)
			continue;
		if (!(def->states & in)) {
			pop3_reply_error(s, "-ERR Command not valid in this state");
			return;
		}
		def->run(s, &cmd);
		return;
	}
	char esc[64];
	log_info(s->c->sid, "event=unknown-command line=\"%s\"",
	         log_escape(line, len, 32, esc, sizeof(esc)));
	pop3_reply_error(s, "-ERR Unknown command");
}

/* ---- input ---- */

static void pop3_session_line_too_long(struct pop3_session *s)
{
	pop3_reply_error(s, "-ERR Line too long");
	if (s->state == POP3_STATE_SASL) {
		auth_exchange_free(&s->auth); /* waiting for a line: nothing of it runs */
		pop3_session_set_state(s, POP3_STATE_AUTHORIZATION);
	}
}

static const char *pop3_ls_state_name(void *ctx)
{
	struct pop3_session *s = ctx;
	return pop3_state_names[s->state];
}

/* A command line or an AUTH response (the layer wipes the line afterwards: PASS
 * and AUTH lines hold secrets). */
static void pop3_ls_on_line(void *ctx, char *line, size_t len)
{
	struct pop3_session *s = ctx;
	if (s->state == POP3_STATE_SASL)
		auth_exchange_response(s->auth, line, len);
	else
		pop3_session_command(s, line, len);
}

static void pop3_ls_on_line_too_long(void *ctx)
{
	pop3_session_line_too_long(ctx);
}

/* A timeout or a peer close ends the session without entering UPDATE (RFC 1939
 * 3): nothing is deleted, and pop3_session_free releases the maildrop lock. */
static const struct line_session_ops pop3_ls_ops = {
    .on_line = pop3_ls_on_line,
    .on_line_too_long = pop3_ls_on_line_too_long,
    .state_name = pop3_ls_state_name,
    .on_drain = pop3_ls_on_drain,
    .timeout_reply = "-ERR Timeout",
    .too_many_errors = "-ERR Too many errors",
};

/* ---- proto_ops ---- */

static int pop3_session_start(struct conn *c)
{
	struct pop3_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -1;
	const struct config *cfg = c->loop->cfg;
	s->c = c;
	c->proto_data = s;
	s->lim.max_errors = cfg->max_errors;
	s->lim.login_delay = cfg->pop3_login_delay;
	s->lim.expire = cfg->pop3_expire;
	s->lim.allow_plaintext_on_loopback = cfg->auth_allow_plaintext_on_loopback;
	struct line_session_limits ll = {
	    .line_max = POP3_LINE_MAX,
	    .idle_timeout = cfg->idle_timeout,
	    .command_timeout = cfg->command_timeout, /* a byte every few seconds is no line */
	    .data_timeout = cfg->data_timeout,
	    .max_errors = cfg->max_errors,
	    .input_high = POP3_INPUT_HIGH,
	    .output_high = POP3_OUTPUT_HIGH,
	    .output_low = POP3_OUTPUT_LOW,
	};
	s->ls = line_session_new(c, &pop3_ls_ops, s, &ll);
	if (s->ls == NULL)
		return -1;
	s->state = POP3_STATE_AUTHORIZATION;
	/* with implicit TLS this waits in the output until the handshake is done */
	pop3_reply(s, "+OK hermod POP3 server ready");
	return 1;
}

static void pop3_session_shutdown(struct conn *c)
{
	struct pop3_session *s = c->proto_data;
	if (s->busy || s->auth_busy) {
		s->stopping = true; /* ends after the job */
		return;
	}
	pop3_session_goodbye(s, "-ERR [SYS/TEMP] Shutting down");
}

static void pop3_session_free(struct conn *c)
{
	struct pop3_session *s = c->proto_data;
	if (s == NULL)
		return;
	/* however the session ended: the maildrop is free again, nothing deleted */
	pop3_lock_drop(s);
	pop3_fetch_free(&s->fetch);
	line_session_free(&s->ls);
	auth_exchange_free(&s->auth);
	if (s->user != NULL) {
		explicit_bzero(s->user, strlen(s->user));
		free(s->user);
	}
	free(s->account);
	free(s->msgs);
	free(s);
	c->proto_data = NULL;
}

const struct proto_ops pop3_proto = {
    .name = "pop3",
    .start = pop3_session_start,
    .shutdown = pop3_session_shutdown,
    .free = pop3_session_free,
    .overload_reply = "-ERR [SYS/TEMP] Too many connections\r\n",
};

/* RFC 8314: TLS from the first byte; the over-limit reply cannot be sent in clear */
const struct proto_ops pop3s_proto = {
    .name = "pop3s",
    .start = pop3_session_start,
    .shutdown = pop3_session_shutdown,
    .free = pop3_session_free,
    .overload_reply = NULL,
    .implicit_tls = true,
};
