/* Inbound SMTP sessions (RFC 5321, with PIPELINING RFC 2920, SIZE RFC 1870,
 * 8BITMIME RFC 6152, SMTPUTF8 RFC 6531, ENHANCEDSTATUSCODES RFC 2034/3463,
 * CHUNKING RFC 3030). The replies are listed in docs/smtp-replies.md.
 *
 * Flow: the line-session layer (net/line_session.h) reads the input and hands over
 * command lines (smtp_ls_on_line), DATA bytes (BODY mode) and BDAT chunks (RAW
 * mode); the state sets the mode. Anything that blocks (recipient lookup,
 * delivery) runs as a worker job; while a job runs the session is "busy" (parked)
 * and buffered pipelined input waits. */
#include "smtp/smtp_session.h"
#include "smtp/smtp_session_int.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth_exchange.h"
#include "auth/ratelimit.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "core/base64.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "mail/header.h"
#include "net/line_session.h"
#include "net/tls.h"
#include "smtp/smtp_parse.h"
#include "store/store.h"

static void smtp_session_line_too_long(struct smtp_session *s);
static bool smtp_tls_available(const struct smtp_session *s);
static bool smtp_plaintext_ok(const struct smtp_session *s);

static const char *const smtp_state_names[] = {"command", "data", "bdat", "closed", "auth"};

/* ---- state and replies ---- */

void smtp_session_set_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state == state)
		return;
	log_debug(s->c->sid, "event=state old=%s new=%s", smtp_state_names[s->state],
		  smtp_state_names[state]);
	s->state = state;
	/* the input mode and line limit of the state */
	switch (state) {
	case SMTP_STATE_COMMAND:
		line_session_set_line_max(s->ls, SMTP_COMMAND_LINE_MAX); /* RFC 5321 4.5.3.1.4 */
		line_session_want_lines(s->ls);
		break;
	case SMTP_STATE_AUTH:
		line_session_set_line_max(s->ls, SMTP_AUTH_LINE_MAX); /* RFC 4954 4 */
		line_session_want_lines(s->ls);
		break;
	case SMTP_STATE_DATA:
	case SMTP_STATE_BDAT:
		if (state == SMTP_STATE_DATA)
			line_session_want_body(s->ls);
		else
			line_session_want_raw(s->ls, s->bdat_remaining);
		/* one deadline for the whole message, over all of its BDAT chunks */
		if (s->tx != NULL && !s->msg_deadline) {
			s->msg_deadline = true;
			line_session_set_deadline(s->ls, s->lim.message_timeout);
		}
		break;
	case SMTP_STATE_CLOSED:
		break;
	}
}

/* The message transfer has ended (complete, refused or cancelled). */
static void smtp_session_message_done(struct smtp_session *s)
{
	if (!s->msg_deadline)
		return;
	s->msg_deadline = false;
	line_session_set_deadline(s->ls, 0);
}

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_session_vreply(s->ls, fmt, ap);
	va_end(ap);
}

/* Sends a final reply and ends the session once it is written. */
void smtp_session_goodbye(struct smtp_session *s, const char *reply)
{
	if (s->state == SMTP_STATE_CLOSED || s->c->dead)
		return;
	smtp_session_set_state(s, SMTP_STATE_CLOSED);
	line_session_goodbye(s->ls, reply);
}

/* A reply to a client mistake: counted towards max_errors (checked before the next
 * command, as the limit is on the number of errors the client may make). */
void smtp_reply_error(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	line_session_verror(s->ls, fmt, ap);
	va_end(ap);
}

/* ---- transactions ---- */

void smtp_tx_free(struct smtp_tx **txp)
{
	struct smtp_tx *tx = *txp;
	if (tx == NULL)
		return;
	while (tx->rcpts != NULL) {
		struct smtp_rcpt *r = tx->rcpts;
		tx->rcpts = r->next;
		free(r->addr);
		free(r->orcpt);
		store_strv_free(&r->accounts);
		store_strv_free(&r->forwards);
		free(r);
	}
	smtp_tx_ahead_free(tx);
	free(tx->from);
	free(tx->envid);
	store_msg_free(&tx->m);
	buf_free(&tx->msg);
	mail_header_scan_free(&tx->header);
	free(tx);
	*txp = NULL;
}

/* Feeds the header scanner the octets just written (data, n: the last n of the
 * message), from the end of our trace fields on. */
static void smtp_tx_scan_header(struct smtp_tx *tx, const char *data, size_t n)
{
	uint64_t end = store_msg_size(tx->m);
	if (end <= tx->trace_len)
		return;
	uint64_t start = end - n;
	size_t skip = start < tx->trace_len ? (size_t)(tx->trace_len - start) : 0;
	(void)mail_header_scan_feed(&tx->header, data + skip, n - skip);
}

/* Moves the staged bytes of tx->msg to the message writer. */
static void smtp_tx_flush(struct smtp_session *s, struct smtp_tx *tx)
{
	size_t n = tx->msg.len;
	if (n == 0)
		return;
	if (!tx->write_failed) {
		char *err = NULL;
		if (tx->m == NULL || store_msg_write(tx->m, tx->msg.data, n, &err) < 0) {
			char esc[600];
			log_error(s->c->sid, "event=message-write-failed id=%s error=\"%s\"", tx->id,
				  log_escape_str(err, esc, sizeof(esc)));
			tx->write_failed = true;
		} else if (tx->scan_header) {
			smtp_tx_scan_header(tx, tx->msg.data, n);
		}
		free(err);
		if (n >= 2) {
			memcpy(tx->tail, tx->msg.data + n - 2, 2);
		} else {
			tx->tail[0] = tx->tail[1];
			tx->tail[1] = tx->msg.data[0];
		}
	}
	buf_reset(&tx->msg);
}

/* Ends the current transaction (RSET, delivery, error). */
void smtp_session_end_tx(struct smtp_session *s)
{
	smtp_tx_free(&s->tx);
	if (s->stopping)
		smtp_session_goodbye(s, "421 4.3.2 Shutting down");
}

/* ---- async jobs ---- */

/* Parks the session while a worker job runs. Reading stays enabled (pipelined
 * input collects in the input buffer, bounded by its high watermark), so a job
 * costs no event changes. */
void smtp_session_park(struct smtp_session *s)
{
	s->busy = true;
	line_session_park(s->ls);
}

void smtp_session_unpark(struct smtp_session *s)
{
	s->busy = false;
	if (s->state == SMTP_STATE_CLOSED || s->c->dead)
		return;
	if (s->stopping && s->tx == NULL) {
		smtp_session_goodbye(s, "421 4.3.2 Shutting down");
		return;
	}
	line_session_unpark(s->ls); /* pipelined input that arrived meanwhile */
}

/* True when the session can take no more replies: closed, or its goodbye sent
 * (a timeout can end it while a job runs). */
bool smtp_session_gone(const struct smtp_session *s)
{
	return line_session_gone(s->ls) || s->state == SMTP_STATE_CLOSED;
}

/* ---- trace headers (RFC 5321 4.4) ---- */

/* The HELO name goes into Received: only when it is a domain or an address
 * literal, so the header stays within the RFC 5321 4.4 grammar. */
static bool smtp_helo_is_domain(const char *helo)
{
	size_t len = strlen(helo);
	if (len >= 3 && helo[0] == '[' && helo[len - 1] == ']') {
		return strspn(helo + 1, "0123456789abcdefABCDEF.:IPv") == len - 2;
	}
	return mail_domain_valid(helo, len, false) > 0;
}

static int smtp_tx_add_trace(struct smtp_session *s, struct smtp_tx *tx)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	/* RFC 5322 3.3 date-time; the C locale gives English names */
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* RFC 3848 / RFC 6531 3.7.3: ESMTP, +S with TLS, +A with AUTH */
	char proto[16];
	snprintf(proto, sizeof(proto), "%s%s%s",
		 tx->smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP",
		 (s->esmtp || tx->smtputf8) && s->c->ssl != NULL ? "S" : "",
		 (s->esmtp || tx->smtputf8) && s->auth_user != NULL ? "A" : "");
	bool v6 = strchr(s->c->ip, ':') != NULL;
	const char *helo = s->helo != NULL && smtp_helo_is_domain(s->helo) ? s->helo : "unknown";
	int r = buf_printf(&tx->msg, "Return-Path: <%s>\r\n", tx->from);
	tx->rp_len = tx->msg.len;
	if (r > 0)
		r = buf_printf(&tx->msg,
			       "Received: from %s ([%s%s])\r\n\tby %s (hermod) with %s id %s",
			       helo, v6 ? "IPv6:" : "", s->c->ip, s->lim.hostname, proto, tx->id);
	/* "for" only with a single recipient: it would disclose the others */
	if (r > 0 && tx->nrcpts == 1)
		r = buf_printf(&tx->msg, "\r\n\tfor <%s>", tx->rcpts->addr);
	if (r > 0)
		r = buf_printf(&tx->msg, "; %s\r\n", date);
	tx->trace_len = tx->msg.len;
	return r;
}

/* ---- commands ---- */

enum {
	SMTP_CMD_NEED_HELO = 1 << 0, /* EHLO/HELO first */
	SMTP_CMD_NEED_MAIL = 1 << 1, /* inside a transaction */
	SMTP_CMD_NEED_RCPT = 1 << 2, /* at least one accepted recipient */
};

struct smtp_command_def {
	enum smtp_verb verb;
	unsigned flags;
	void (*run)(struct smtp_session *s, const struct smtp_command *cmd);
};

static bool smtp_need_helo(struct smtp_session *s)
{
	if (s->helo != NULL)
		return true;
	smtp_reply_error(s, "503 5.5.1 Send EHLO or HELO first");
	return false;
}

static bool smtp_need_mail(struct smtp_session *s)
{
	if (s->tx != NULL)
		return true;
	smtp_reply_error(s, "503 5.5.1 Need MAIL first");
	return false;
}

static bool smtp_need_rcpt(struct smtp_session *s)
{
	if (s->tx != NULL && s->tx->nrcpts > 0)
		return true;
	smtp_reply_error(s, "503 5.5.1 Need RCPT first");
	return false;
}

static bool smtp_args_empty(const struct smtp_command *cmd)
{
	for (size_t i = 0; i < cmd->args_len; i++)
		if (cmd->args[i] != ' ' && cmd->args[i] != '\t')
			return false;
	return true;
}

static void smtp_cmd_helo(struct smtp_session *s, const struct smtp_command *cmd)
{
	bool ehlo = cmd->verb == SMTP_VERB_EHLO;
	/* the domain: first word of the arguments */
	size_t start = 0, end;
	while (start < cmd->args_len && cmd->args[start] == ' ')
		start++;
	end = start;
	while (end < cmd->args_len && cmd->args[end] != ' ')
		end++;
	if (end == start) {
		smtp_reply_error(s, "501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
		return;
	}
	for (size_t i = start; i < end; i++) {
		unsigned char ch = (unsigned char)cmd->args[i];
		if (ch < 0x21 || ch == 0x7f) {
			smtp_reply_error(s, "501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
			return;
		}
	}
	free(s->helo);
	s->helo = strndup(cmd->args + start, end - start);
	if (s->helo == NULL) {
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	s->esmtp = ehlo;
	/* RFC 5321 4.1.4: EHLO/HELO resets the transaction */
	smtp_tx_free(&s->tx);
	char esc[300];
	log_info(s->c->sid, "event=helo helo=\"%s\" esmtp=%d",
		 log_escape(s->helo, strlen(s->helo), 255, esc, sizeof(esc)), ehlo);
	if (!ehlo) {
		smtp_reply(s, "250 %s", s->lim.hostname);
		return;
	}
	smtp_reply(s, "250-%s", s->lim.hostname);
	smtp_reply(s, "250-PIPELINING");
	smtp_reply(s, "250-SIZE %llu", (unsigned long long)s->lim.max_message_size);
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250-ENHANCEDSTATUSCODES");
	/* RFC 3461: the parameters are kept with the queue entry */
	smtp_reply(s, "250-DSN");
	if (smtp_tls_available(s))
		smtp_reply(s, "250-STARTTLS");
	/* RFC 8689: only inside TLS (the parameter is refused outside); the queue
	 * keeps the requirement (docs/delivery.md) */
	if (s->c->ssl != NULL)
		smtp_reply(s, "250-REQUIRETLS");
	if (s->submission && smtp_plaintext_ok(s)) {
		unsigned char cb[32];
		bool have_cb = s->c->ssl != NULL && tls_channel_binding(s->c->ssl, cb) > 0;
		explicit_bzero(cb, sizeof(cb));
		smtp_reply(s, "250-AUTH %s", sasl_mechs_advertised(true, have_cb));
	}
	smtp_reply(s, "250 CHUNKING");
}

/* The extensions whose MAIL/RCPT parameters this session accepts: those EHLO
 * advertised (none after HELO). */
unsigned smtp_session_ext(const struct smtp_session *s)
{
	if (!s->esmtp)
		return 0;
	return SMTP_EXT_DSN | (s->c->ssl != NULL ? SMTP_EXT_REQUIRETLS : 0);
}

/* Starts the transaction MAIL asked for; takes args->envid. */
static void smtp_mail_accept(struct smtp_session *s, struct smtp_mail_args *args)
{
	const char *from = args->from.null ? "" : args->from.addr;
	struct smtp_tx *tx = calloc(1, sizeof(*tx));
	if (tx == NULL || (tx->from = strdup(from)) == NULL) {
		free(tx);
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	tx->smtputf8 = args->smtputf8;
	tx->requiretls = args->requiretls;
	tx->body = args->body;
	tx->envid = args->envid;
	args->envid = NULL;
	tx->ret = args->ret == NULL ? STORE_RET_NONE
		  : strcmp(args->ret, "HDRS") == 0 ? STORE_RET_HDRS
						   : STORE_RET_FULL;
	tx->rcpt_tail = &tx->rcpts;
	buf_init(&tx->msg, 0);
	snprintf(tx->id, sizeof(tx->id), "%s.%u", s->c->sid, ++s->ntx);
	s->tx = tx;
	char esc[300];
	log_info(s->c->sid, "event=mail id=%s from=\"%s\"%s%s", tx->id,
		 log_escape(tx->from, strlen(tx->from), 256, esc, sizeof(esc)),
		 s->auth_user != NULL ? " user=" : "", s->auth_user != NULL ? s->auth_user : "");
	smtp_reply(s, "250 2.1.0 Ok");
}

/* Submission: does the authenticated user own the sender address? */
struct smtp_mail_job {
	struct smtp_session *s;
	struct store *store;
	char *account;
	struct smtp_mail_args args; /* the command's, taken over */
	int result;
	char *error;
};

static void smtp_mail_job_run(void *arg)
{
	struct smtp_mail_job *j = arg;
	j->result =
	    store_account_owns_address(j->store, j->account, j->args.from.addr, &j->error);
}

static void smtp_mail_job_done(void *arg)
{
	struct smtp_mail_job *j = arg;
	struct smtp_session *s = j->s;
	if (!smtp_session_gone(s)) {
		char esc[300];
		const char *from = j->args.from.addr;
		if (j->result > 0) {
			smtp_mail_accept(s, &j->args);
		} else if (j->result == 0) {
			log_info(s->c->sid, "event=mail-refused user=%s from=\"%s\" reason=not-owner",
				 j->account, log_escape(from, strlen(from), 256, esc, sizeof(esc)));
			smtp_reply_error(s, "553 5.7.1 Sender address not owned by authenticated user");
		} else {
			log_error(s->c->sid, "event=mail error=\"%s\"",
				  log_escape_str(j->error, esc, sizeof(esc)));
			smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		}
	}
	free(j->account);
	smtp_mail_args_free(&j->args);
	free(j->error);
	free(j);
	if (!smtp_session_gone(s))
		smtp_session_unpark(s);
}

/* Takes *args over (it is left zeroed). */
static void smtp_mail_check_owner(struct smtp_session *s, struct smtp_mail_args *args)
{
	struct smtp_mail_job *j = calloc(1, sizeof(*j));
	if (j != NULL) {
		j->s = s;
		j->store = s->c->srv->store;
		j->account = strdup(s->auth_user);
		j->args = *args;
		memset(args, 0, sizeof(*args));
	}
	if (j == NULL || j->account == NULL ||
	    conn_submit(s->c, smtp_mail_job_run, smtp_mail_job_done, j) < 0) {
		if (j != NULL) {
			free(j->account);
			smtp_mail_args_free(&j->args);
			free(j);
		}
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	smtp_session_park(s);
}

static void smtp_cmd_mail(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (s->tx != NULL) {
		smtp_reply_error(s, "503 5.5.1 Sender already specified");
		return;
	}
	if (s->submission && s->auth_user == NULL) {
		smtp_reply_error(s, "530 5.7.0 Authentication required");
		return;
	}
	struct smtp_mail_args args;
	const char *error = "bad syntax";
	enum smtp_parse_result pr =
		smtp_mail_args_parse(cmd->args, cmd->args_len, smtp_session_ext(s), &args, &error);
	if (pr == SMTP_PARSE_PARAM) {
		smtp_reply_error(s, "555 5.5.4 %s", error);
		return;
	}
	if (pr == SMTP_PARSE_UTF8) {
		smtp_reply_error(s, "553 5.6.7 %s", error);
		return;
	}
	if (pr != SMTP_PARSE_OK) {
		smtp_reply_error(s, "501 5.5.4 %s", error);
		return;
	}
	if (args.has_size && args.size > s->lim.max_message_size) {
		smtp_reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
		smtp_mail_args_free(&args);
		return;
	}
	if (s->submission && !args.from.null) {
		/* RFC 6409 6.1: the sender must be the user's; ask the store */
		smtp_mail_check_owner(s, &args);
		smtp_mail_args_free(&args);
		return;
	}
	smtp_mail_accept(s, &args);
	smtp_mail_args_free(&args);
}

static void smtp_tx_start_body(struct smtp_session *s, enum smtp_body_mode mode)
{
	struct smtp_tx *tx = s->tx;
	smtp_body_reader_init(&tx->reader, mode, s->lim.max_line_length, s->lim.max_message_size);
	buf_reset(&tx->msg);
	store_msg_free(&tx->m);
	char *err = NULL;
	if (store_msg_begin(s->c->srv->store, &tx->m, &err) < 0) {
		char esc[600];
		log_error(s->c->sid, "event=message-write-failed id=%s error=\"%s\"", tx->id,
			  log_escape_str(err, esc, sizeof(esc)));
		tx->write_failed = true;
	}
	free(err);
	/* the header section is scanned on the way: the submission checks need it,
	 * and every port counts its Received: fields (mail loops) */
	mail_header_scan_free(&tx->header);
	tx->scan_header = true;
	mail_header_scan_init(&tx->header, SMTP_HEADER_MAX);
	if (smtp_tx_add_trace(s, tx) < 0)
		tx->reader.too_big = true; /* cannot happen short of memory */
	smtp_tx_flush(s, tx);
}

static void smtp_cmd_data(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (!smtp_args_empty(cmd)) {
		smtp_reply_error(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->tx->bdat_used) {
		smtp_reply_error(s, "503 5.5.1 DATA not allowed after BDAT");
		return;
	}
	smtp_tx_start_body(s, SMTP_BODY_MODE_DATA);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtp_session_set_state(s, SMTP_STATE_DATA);
}

static void smtp_cmd_bdat(struct smtp_session *s, const struct smtp_command *cmd)
{
	uint64_t size;
	bool last;
	const char *error = "bad syntax";
	if (smtp_bdat_args_parse(cmd->args, cmd->args_len, &size, &last, &error) != SMTP_PARSE_OK) {
		/* without a valid size the chunk cannot be skipped: the stream is lost */
		smtp_reply_error(s, "501 5.5.4 %s", error);
		return;
	}
	/* RFC 3030 2: the chunk's octets are read even when the command fails -- but
	 * not a chunk over the size limit: reading it would cost as much as storing
	 * it (BDAT 18446744073709551615 would be read for ever), and its bytes cannot
	 * be told from commands once refused. As Postfix does, answer at once and end
	 * the session. RFC 1870 6 gives 552 for a message over the fixed limit. */
	uint64_t max = s->lim.max_message_size;
	uint64_t total = s->tx != NULL ? s->tx->bdat_total : 0;
	if (size > max || total > max - size) {
		log_info(s->c->sid, "event=rejected id=%s reason=bdat-size chunk=%llu total=%llu",
			 s->tx != NULL ? s->tx->id : "-", (unsigned long long)size,
			 (unsigned long long)total);
		smtp_tx_free(&s->tx);
		smtp_session_goodbye(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	s->bdat_remaining = size;
	s->bdat_size = size;
	s->bdat_last = last;
	s->bdat_reply = NULL;
	if (s->helo == NULL)
		s->bdat_reply = "503 5.5.1 Send EHLO or HELO first";
	else if (s->tx == NULL)
		s->bdat_reply = "503 5.5.1 Need MAIL first";
	else if (s->tx->nrcpts == 0)
		s->bdat_reply = "503 5.5.1 Need RCPT first";
	else if (!s->tx->bdat_used) {
		s->tx->bdat_used = true;
		smtp_tx_start_body(s, SMTP_BODY_MODE_BDAT);
	}
	if (s->bdat_reply == NULL)
		s->tx->bdat_total = total + size;
	smtp_session_set_state(s, SMTP_STATE_BDAT);
}

static void smtp_cmd_rset(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_tx_free(&s->tx);
	smtp_reply(s, "250 2.0.0 Ok");
	if (s->stopping)
		smtp_session_goodbye(s, "421 4.3.2 Shutting down");
}

static void smtp_cmd_noop(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void smtp_cmd_quit(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_session_goodbye(s, "221 2.0.0 Bye");
}

static void smtp_cmd_help(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_reply(s, "214 2.0.0 See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET "
		      "NOOP QUIT HELP VRFY");
}

static void smtp_cmd_vrfy(struct smtp_session *s, const struct smtp_command *cmd)
{
	/* RFC 5321 3.5.3: 252 when we will not confirm addresses (harvesting) */
	smtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void smtp_cmd_not_implemented(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_reply_error(s, "502 5.5.1 Command not implemented");
}

/* ---- STARTTLS (RFC 3207) and AUTH (RFC 4954) ---- */

static bool smtp_tls_available(const struct smtp_session *s)
{
	return s->c->loop->tls != NULL && s->c->ssl == NULL;
}

/* PLAIN and LOGIN (and AUTH at all on 587): inside TLS, or on loopback when the
 * admin allowed it (the development instance). */
static bool smtp_plaintext_ok(const struct smtp_session *s)
{
	return s->c->ssl != NULL || (s->lim.allow_plaintext_on_loopback && conn_is_loopback(s->c));
}

static void smtp_cmd_starttls(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (s->c->ssl != NULL) {
		smtp_reply_error(s, "503 5.5.1 TLS already active");
		return;
	}
	if (!smtp_tls_available(s)) {
		smtp_reply_error(s, "502 5.5.1 Command not implemented");
		return;
	}
	if (!smtp_args_empty(cmd)) {
		smtp_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: buffered input is discarded there; on failure the
	 * connection is closed (the session stays until proto_ops.free) */
	if (line_session_start_tls(s->ls) < 0)
		return;
	/* RFC 3207 4.2: forget everything learnt from the client */
	free(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	free(s->auth_user);
	s->auth_user = NULL;
	smtp_tx_free(&s->tx);
	smtp_session_message_done(s);
	log_info(s->c->sid, "event=starttls");
}

/* ---- AUTH: the protocol framing of the shared exchange (auth/auth_exchange.h) ---- */

static void smtp_auth_challenge(void *ctx, const char *b64)
{
	struct smtp_session *s = ctx;
	smtp_reply(s, "334 %s", b64);
	smtp_session_set_state(s, SMTP_STATE_AUTH);
}

static void smtp_auth_success(void *ctx, const char *account)
{
	struct smtp_session *s = ctx;
	smtp_session_set_state(s, SMTP_STATE_COMMAND);
	free(s->auth_user);
	s->auth_user = strdup(account);
	if (s->auth_user == NULL) {
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	smtp_reply(s, "235 2.7.0 Authentication successful");
}

static void smtp_auth_failure(void *ctx, enum auth_outcome outcome)
{
	struct smtp_session *s = ctx;
	smtp_session_set_state(s, SMTP_STATE_COMMAND);
	switch (outcome) {
	case AUTH_FAILED:
		smtp_reply_error(s, "535 5.7.8 Authentication credentials invalid");
		break;
	case AUTH_MALFORMED:
		smtp_reply_error(s, "501 5.5.4 Malformed authentication data");
		break;
	case AUTH_UNDECODABLE: /* RFC 4954 4 */
		smtp_reply_error(s, "501 5.5.2 Cannot decode response");
		break;
	case AUTH_CANCELLED:
		smtp_reply_error(s, "501 5.7.0 Authentication cancelled");
		break;
	case AUTH_THROTTLED:
		smtp_reply(s, "454 4.7.0 Too many failed authentications, try again later");
		break;
	case AUTH_TEMPFAIL:
	default:
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	}
}

static void smtp_auth_busy(void *ctx, bool busy)
{
	struct smtp_session *s = ctx;
	s->auth_busy = busy;
	if (busy)
		line_session_park(s->ls);
	else if (!s->busy)
		smtp_session_unpark(s);
}

static const struct auth_exchange_ops smtp_auth_ops = {
	.challenge = smtp_auth_challenge,
	.success = smtp_auth_success,
	.failure = smtp_auth_failure,
	.busy = smtp_auth_busy,
};

static void smtp_cmd_auth(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (!s->submission) {
		smtp_reply_error(s, "502 5.5.1 Command not implemented");
		return;
	}
	if (s->auth_user != NULL) {
		smtp_reply_error(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (s->tx != NULL) {
		smtp_reply_error(s, "503 5.5.1 Not allowed during a mail transaction");
		return;
	}
	if (!smtp_plaintext_ok(s)) {
		/* RFC 8314 / issue 3: on 587 AUTH only after STARTTLS */
		smtp_reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	/* AUTH mechanism [initial-response] */
	size_t i = 0, mstart, mend;
	while (i < cmd->args_len && cmd->args[i] == ' ')
		i++;
	mstart = i;
	while (i < cmd->args_len && cmd->args[i] != ' ')
		i++;
	mend = i;
	while (i < cmd->args_len && cmd->args[i] == ' ')
		i++;
	if (mend == mstart) {
		smtp_reply_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	int mech = sasl_mech_from_name(cmd->args + mstart, mend - mstart);
	unsigned char cb[32];
	bool have_cb = s->c->ssl != NULL && tls_channel_binding(s->c->ssl, cb) > 0;
	if (mech < 0 || (mech == SASL_MECH_SCRAM_SHA_256_PLUS && !have_cb)) {
		smtp_reply_error(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	if (auth_exchange_ip_refused(s->c)) {
		explicit_bzero(cb, sizeof(cb));
		smtp_reply(s, "454 4.7.0 Too many failed authentications, try again later");
		return;
	}
	auth_exchange_free(&s->auth);
	s->auth = auth_exchange_new(s->c, (enum sasl_mech)mech, NULL, have_cb ? cb : NULL,
				    have_cb ? sizeof(cb) : 0, &smtp_auth_ops, s);
	explicit_bzero(cb, sizeof(cb));
	if (s->auth == NULL) {
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	/* RFC 4954 4: "=" is an empty initial response */
	auth_exchange_start(s->auth, i < cmd->args_len ? cmd->args + i : NULL, cmd->args_len - i);
}

static void smtp_session_line_too_long(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_AUTH) {
		smtp_reply_error(s, "500 5.5.6 Authentication exchange line is too long");
		auth_exchange_free(&s->auth); /* waiting for a line: nothing of it runs */
		smtp_session_set_state(s, SMTP_STATE_COMMAND);
		return;
	}
	smtp_reply_error(s, "500 5.5.2 Line too long");
}

static const struct smtp_command_def smtp_commands[] = {
	{SMTP_VERB_EHLO, 0, smtp_cmd_helo},
	{SMTP_VERB_HELO, 0, smtp_cmd_helo},
	{SMTP_VERB_MAIL, SMTP_CMD_NEED_HELO, smtp_cmd_mail},
	{SMTP_VERB_RCPT, SMTP_CMD_NEED_HELO | SMTP_CMD_NEED_MAIL, smtp_cmd_rcpt},
	{SMTP_VERB_DATA, SMTP_CMD_NEED_HELO | SMTP_CMD_NEED_MAIL | SMTP_CMD_NEED_RCPT,
	 smtp_cmd_data},
	{SMTP_VERB_BDAT, 0, smtp_cmd_bdat}, /* checks its own state: it must eat the chunk */
	{SMTP_VERB_RSET, 0, smtp_cmd_rset},
	{SMTP_VERB_NOOP, 0, smtp_cmd_noop},
	{SMTP_VERB_QUIT, 0, smtp_cmd_quit},
	{SMTP_VERB_HELP, 0, smtp_cmd_help},
	{SMTP_VERB_VRFY, 0, smtp_cmd_vrfy},
	{SMTP_VERB_EXPN, 0, smtp_cmd_not_implemented},
	{SMTP_VERB_STARTTLS, 0, smtp_cmd_starttls},
	{SMTP_VERB_AUTH, SMTP_CMD_NEED_HELO, smtp_cmd_auth},
};

static void smtp_session_command(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	const char *error = "bad syntax";
	enum smtp_parse_result pr = smtp_command_parse(line, len, &cmd, &error);
	if (pr == SMTP_PARSE_OK && cmd.verb == SMTP_VERB_UNKNOWN) {
		char esc[64];
		log_info(s->c->sid, "event=unknown-command line=\"%s\"",
			 log_escape(line, len, 32, esc, sizeof(esc)));
		smtp_reply_error(s, "500 5.5.2 Command unrecognized");
		return;
	}
	if (pr != SMTP_PARSE_OK) {
		smtp_reply_error(s, "501 5.5.4 %s", error);
		return;
	}
	for (size_t i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]); i++) {
		const struct smtp_command_def *def = &smtp_commands[i];
		if (def->verb != cmd.verb)
			continue;
		if ((def->flags & SMTP_CMD_NEED_HELO) && !smtp_need_helo(s))
			return;
		if ((def->flags & SMTP_CMD_NEED_MAIL) && !smtp_need_mail(s))
			return;
		if ((def->flags & SMTP_CMD_NEED_RCPT) && !smtp_need_rcpt(s))
			return;
		def->run(s, &cmd);
		return;
	}
	smtp_reply_error(s, "500 5.5.2 Command unrecognized");
}

/* ---- input (net/line_session.h drives it) ---- */

static const char *smtp_ls_state_name(void *ctx)
{
	struct smtp_session *s = ctx;
	return smtp_state_names[s->state];
}

/* A command line or an AUTH response. */
static void smtp_ls_on_line(void *ctx, char *line, size_t len)
{
	struct smtp_session *s = ctx;
	if (s->state == SMTP_STATE_AUTH) {
		auth_exchange_response(s->auth, line, len);
		return;
	}
	smtp_session_command(s, line, len);
	/* RSET, EHLO or an error ended the message the deadline was for */
	if (s->msg_deadline &&
	    (s->tx == NULL || (s->state == SMTP_STATE_COMMAND && !s->tx->bdat_used)))
		smtp_session_message_done(s);
}

static void smtp_ls_on_line_too_long(void *ctx)
{
	smtp_session_line_too_long(ctx);
}

/* RFC 4954 4: "AUTH mechanism initial-response" may be as long as an AUTH
 * response (12288 octets); every other command line stays at 512. */
static size_t smtp_ls_line_max_for(void *ctx, const char *start, size_t len)
{
	struct smtp_session *s = ctx;
	if (s->state == SMTP_STATE_COMMAND && s->submission && s->auth_user == NULL &&
	    len >= 5 && strncasecmp(start, "AUTH ", 5) == 0)
		return SMTP_AUTH_LINE_MAX;
	return 0;
}

/* The message is complete (DATA end seen, or the LAST chunk consumed). */
static void smtp_session_message_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	smtp_session_message_done(s);
	if (tx->reader.too_big) {
		log_info(s->c->sid, "event=rejected id=%s reason=size size=%llu", tx->id,
			 (unsigned long long)tx->reader.size);
		smtp_reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
		smtp_session_end_tx(s);
		return;
	}
	if (tx->reader.line_too_long) {
		log_info(s->c->sid, "event=rejected id=%s reason=line-length", tx->id);
		smtp_reply_error(s, "500 5.5.2 Line too long");
		smtp_session_end_tx(s);
		return;
	}
	if (tx->write_failed) {
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		smtp_session_end_tx(s);
		return;
	}
	/* RFC 5321 6.3: a message that has passed this many relays is looping
	 * (forwarding between two servers, say); the threshold "should be large":
	 * 100, as the RFC suggests (Postfix's hopcount_limit is 50) */
	if (tx->header.nreceived >= SMTP_HOPS_MAX) {
		log_info(s->c->sid, "event=rejected id=%s reason=too-many-hops received=%u", tx->id,
			 tx->header.nreceived);
		smtp_reply_error(s, "554 5.4.6 Too many hops");
		smtp_session_end_tx(s);
		return;
	}
	smtp_session_deliver(s);
}

/* DATA body bytes (BODY mode) or a BDAT chunk's (RAW mode). */
static long smtp_ls_on_data(void *ctx, const char *data, size_t len)
{
	struct smtp_session *s = ctx;
	struct smtp_tx *tx = s->tx;
	if (s->state == SMTP_STATE_BDAT && s->bdat_reply != NULL)
		return (long)len; /* failed command: skip the chunk */
	long used = smtp_body_reader_feed(&tx->reader, data, len, &tx->msg);
	if (used < 0) {
		log_error(s->c->sid, "event=out-of-memory");
		smtp_session_goodbye(s, "421 4.3.0 Out of memory");
		return -1;
	}
	smtp_tx_flush(s, tx);
	if (s->state == SMTP_STATE_BDAT) {
		s->bdat_remaining -= (uint64_t)used;
	} else if (tx->reader.done) {
		smtp_session_set_state(s, SMTP_STATE_COMMAND);
		smtp_session_message_end(s);
	}
	return used;
}

/* A BDAT chunk has been consumed. */
static void smtp_ls_on_raw_end(void *ctx)
{
	struct smtp_session *s = ctx;
	struct smtp_tx *tx = s->tx;
	s->bdat_remaining = 0;
	smtp_session_set_state(s, SMTP_STATE_COMMAND);
	if (s->bdat_reply != NULL) {
		smtp_reply_error(s, "%s", s->bdat_reply);
		return;
	}
	if (tx->reader.too_big) {
		smtp_session_message_done(s);
		smtp_reply_error(s, "552 5.3.4 Message size exceeds fixed limit");
		smtp_session_end_tx(s);
		return;
	}
	if (!s->bdat_last) {
		smtp_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)s->bdat_size);
		return;
	}
	smtp_body_reader_finish(&tx->reader, &tx->msg);
	smtp_tx_flush(s, tx);
	/* A BDAT message need not end in CRLF; stored messages always do (RFC 5322
	 * 2.1: lines end in CRLF), so POP3 sizes and IMAP literals stay exact. */
	if (tx->m != NULL && store_msg_size(tx->m) > tx->trace_len &&
	    memcmp(tx->tail, "\r\n", 2) != 0) {
		if (buf_append(&tx->msg, "\r\n", 2) < 0)
			tx->reader.too_big = true; /* out of memory: refuse, not truncate */
		smtp_tx_flush(s, tx);
	}
	smtp_session_message_end(s);
}

static const struct line_session_ops smtp_ls_ops = {
	.on_line = smtp_ls_on_line,
	.on_line_too_long = smtp_ls_on_line_too_long,
	.line_max_for = smtp_ls_line_max_for,
	.on_data = smtp_ls_on_data,
	.on_raw_end = smtp_ls_on_raw_end,
	.state_name = smtp_ls_state_name,
	.timeout_reply = "421 4.4.2 Timeout",
	.too_many_errors = "421 4.7.0 Too many errors",
};

/* ---- proto_ops ---- */

static int smtp_session_start_mode(struct conn *c, bool submission)
{
	struct smtp_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -1;
	const struct config *cfg = c->loop->cfg;
	s->c = c;
	c->proto_data = s;
	s->submission = submission;
	s->lim.max_message_size = cfg->max_message_size;
	s->lim.max_recipients = cfg->max_recipients;
	s->lim.max_errors = cfg->max_errors;
	/* RFC 5321 4.5.3.1.6 sets 1000 octets per text line, but Postfix and Dovecot
	 * take longer lines and real mail has them (HTML on one line): the limit is
	 * enforced only when the admin asks for it; otherwise a line is bounded by
	 * the message size alone. */
	s->lim.max_line_length = cfg->strict_line_length ? cfg->max_line_length : 0;
	s->lim.idle_timeout = cfg->idle_timeout;
	s->lim.command_timeout = cfg->command_timeout;
	s->lim.data_timeout = cfg->data_timeout;
	s->lim.message_timeout = cfg->message_timeout;
	s->lim.allow_plaintext_on_loopback = cfg->auth_allow_plaintext_on_loopback;
	s->lim.require_from_match = cfg->submission_require_from_match;
	s->lim.rate_limit = cfg->submission_rate_limit;
	snprintf(s->lim.hostname, sizeof(s->lim.hostname), "%s", cfg->hostname);
	snprintf(s->lim.srs_secret, sizeof(s->lim.srs_secret), "%s",
	         cfg->srs_secret != NULL ? cfg->srs_secret : "");
	struct line_session_limits ll = {
		.line_max = SMTP_COMMAND_LINE_MAX, /* RFC 5321 4.5.3.1.4 */
		.idle_timeout = cfg->idle_timeout,
		.command_timeout = cfg->command_timeout,
		.data_timeout = cfg->data_timeout,
		.max_errors = cfg->max_errors,
		.input_high = SMTP_INPUT_HIGH,
		.output_high = SMTP_OUTPUT_HIGH,
		.output_low = SMTP_OUTPUT_LOW,
	};
	s->ls = line_session_new(c, &smtp_ls_ops, s, &ll);
	if (s->ls == NULL)
		return -1;
	s->state = SMTP_STATE_COMMAND;
	/* with implicit TLS this waits in the output until the handshake is done */
	smtp_reply(s, "220 %s ESMTP hermod", s->lim.hostname);
	return 1;
}

static int smtp_session_start(struct conn *c)
{
	return smtp_session_start_mode(c, false);
}

static int smtp_session_start_submission(struct conn *c)
{
	return smtp_session_start_mode(c, true);
}

static void smtp_session_shutdown(struct conn *c)
{
	struct smtp_session *s = c->proto_data;
	if (s->busy || s->tx != NULL) {
		s->stopping = true; /* ends after the transaction */
		return;
	}
	smtp_session_goodbye(s, "421 4.3.2 Shutting down");
}

static void smtp_session_free(struct conn *c)
{
	struct smtp_session *s = c->proto_data;
	if (s == NULL)
		return;
	line_session_free(&s->ls);
	auth_exchange_free(&s->auth);
	free(s->auth_user);
	smtp_tx_free(&s->tx);
	free(s->helo);
	free(s);
	c->proto_data = NULL;
}

const struct proto_ops smtp_proto = {
	.name = "smtp",
	.start = smtp_session_start,
	.shutdown = smtp_session_shutdown,
	.free = smtp_session_free,
	.overload_reply = "421 4.7.0 Too many connections\r\n",
};

const struct proto_ops submission_proto = {
	.name = "submission",
	.start = smtp_session_start_submission,
	.shutdown = smtp_session_shutdown,
	.free = smtp_session_free,
	.overload_reply = "421 4.7.0 Too many connections\r\n",
};

/* RFC 8314: TLS from the first byte; the over-limit reply cannot be sent in clear */
const struct proto_ops submissions_proto = {
	.name = "submissions",
	.start = smtp_session_start_submission,
	.shutdown = smtp_session_shutdown,
	.free = smtp_session_free,
	.overload_reply = NULL,
	.implicit_tls = true,
};
