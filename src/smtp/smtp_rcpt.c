/* RCPT TO (RFC 5321 4.1.1.3) and its recipient lookups in the store. */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/ratelimit.h"
#include "core/log.h"
#include "delivery/srs.h"
#include "net/line_session.h"
#include "smtp/smtp_session_int.h"

/* ---- RCPT: recipient lookups in the store ----
 * A RCPT's lookup runs as a worker job. With PIPELINING (RFC 2920) the client
 * may have sent more RCPTs already: the job resolves those too (peeked at, not
 * taken from the input), and their commands, processed in order as usual
 * afterwards, find their result in tx->ahead and answer without a job. So a
 * pipelined transaction costs one worker round trip for its RCPTs, and every
 * reply, error count and limit is exactly what one job per RCPT gives. */

/* Most RCPTs resolved ahead by one job. */
#define SMTP_RCPT_AHEAD_MAX 100

/* What the store is asked for one RCPT; its result when resolved. */
struct smtp_rcpt_lookup {
	char *lookup;    /* address to resolve */
	char *domain;    /* NULL: no domain check (postmaster) */
	bool literal;    /* address literal or routing in the local part: never ours */
	int result;      /* 1 local account(s) and/or forwards, 0 unknown user, 2 not our
			    domain, 3 remote (submission), 4 an invalid SRS address, -1 error */
	char **accounts;
	char **forwards; /* remote addresses it forwards to (aliases, SRS bounces) */
	char *error;
};

static void smtp_rcpt_lookup_clear(struct smtp_rcpt_lookup *lk)
{
	free(lk->lookup);
	free(lk->domain);
	store_strv_free(&lk->accounts);
	store_strv_free(&lk->forwards);
	free(lk->error);
	memset(lk, 0, sizeof(*lk));
}

void smtp_tx_ahead_free(struct smtp_tx *tx)
{
	for (size_t i = 0; i < tx->nahead; i++)
		smtp_rcpt_lookup_clear(&tx->ahead[i]);
	free(tx->ahead);
	tx->ahead = NULL;
	tx->nahead = tx->ahead_next = 0;
}

static char *smtp_lower_dup(const char *in)
{
	char *out = strdup(in);
	if (out != NULL)
		for (char *p = out; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return out;
}

/* The lookup a RCPT's parsed arguments ask for. 1 ok, -1 out of memory. */
static int smtp_rcpt_lookup_init(const struct smtp_session *s, const struct smtp_rcpt_args *args,
				 struct smtp_rcpt_lookup *lk)
{
	memset(lk, 0, sizeof(*lk));
	if (args->to.domain == NULL) {
		/* RFC 5321 4.1.1.3 / 4.5.1: "Postmaster" without a domain must be
		 * accepted; the store's recipient rules decide whose it is (the primary
		 * domain's postmaster), as they do for postmaster@ a local domain. */
		lk->lookup = strdup("postmaster");
	} else if (!s->submission && strpbrk(args->to.local, "%!@") != NULL) {
		/* Sender-specified routing (user%host@, host!user@, "user@host"@):
		 * never interpreted, refused as relaying like Postfix does */
		lk->literal = true;
		lk->lookup = strdup(args->to.addr);
	} else {
		lk->lookup = smtp_lower_dup(args->to.addr);
		lk->domain = smtp_lower_dup(args->to.domain);
		lk->literal = args->to.domain_literal;
		if (lk->domain == NULL) {
			smtp_rcpt_lookup_clear(lk);
			return -1;
		}
	}
	if (lk->lookup == NULL) {
		smtp_rcpt_lookup_clear(lk);
		return -1;
	}
	return 1;
}

static bool smtp_rcpt_lookup_same(const struct smtp_rcpt_lookup *a,
				  const struct smtp_rcpt_lookup *b)
{
	return a->literal == b->literal && strcmp(a->lookup, b->lookup) == 0 &&
	       (a->domain == NULL) == (b->domain == NULL) &&
	       (a->domain == NULL || strcmp(a->domain, b->domain) == 0);
}

struct smtp_rcpt_job {
	struct smtp_session *s;
	struct store *store;
	char srs_secret[256]; /* the session's, "" none */
	bool submission;  /* an authenticated user's: other domains are relayed */
	/* the command that started the job */
	char *addr;       /* as given, for the reply log */
	unsigned notify;  /* RFC 3461 NOTIFY bits of the command */
	char *orcpt;      /* RFC 3461 ORCPT of the command, or NULL */
	/* lk[0]: its lookup; lk[1..n): those of the RCPTs pipelined behind it */
	struct smtp_rcpt_lookup *lk;
	size_t n;
};

static void smtp_rcpt_job_run(void *arg)
{
	struct smtp_rcpt_job *j = arg;
	const char **addrs = calloc(j->n, sizeof(*addrs));
	size_t *idx = calloc(j->n, sizeof(*idx));
	char ***res = calloc(j->n, sizeof(*res));
	int *rcs = calloc(j->n, sizeof(*rcs));
	size_t k = 0;
	for (size_t i = 0; i < j->n; i++) {
		struct smtp_rcpt_lookup *lk = &j->lk[i];
		if (lk->literal) {
			lk->result = j->submission ? 3 : 2;
			continue;
		}
		if (lk->domain != NULL) {
			int r = store_domain_exists(j->store, lk->domain, &lk->error);
			if (r <= 0) {
				lk->result = r < 0 ? -1 : j->submission ? 3 : 2;
				continue;
			}
			/* a bounce to an address we made forwarding (SRS0=...@ours) goes
			 * back to the original sender */
			char orig[SRS_ADDR_MAX + 1];
			int sr = j->srs_secret[0] != '\0'
			             ? srs_reverse(j->srs_secret, lk->lookup, time(NULL), orig,
			                           sizeof(orig))
			             : 0;
			if (sr < 0) {
				lk->result = 4;
				continue;
			}
			if (sr > 0) {
				lk->forwards = calloc(2, sizeof(char *));
				if (lk->forwards == NULL || (lk->forwards[0] = strdup(orig)) == NULL) {
					lk->result = -1;
					lk->error = strdup("out of memory");
				} else {
					lk->result = 1;
				}
				continue;
			}
		}
		if (addrs == NULL || idx == NULL || res == NULL || rcs == NULL) {
			lk->result = -1;
			lk->error = strdup("out of memory");
			continue;
		}
		addrs[k] = lk->lookup;
		idx[k++] = i;
	}
	char ***fwd = k > 0 ? calloc(k, sizeof(*fwd)) : NULL;
	if (k > 0 && fwd == NULL) {
		for (size_t m = 0; m < k; m++) {
			j->lk[idx[m]].result = -1;
			j->lk[idx[m]].error = strdup("out of memory");
		}
		k = 0;
	}
	if (k > 0) {
		/* every lookup in one read snapshot */
		char *err = NULL;
		int r = store_resolve_recipients_fwd(j->store, addrs, k, res, fwd, rcs, &err);
		for (size_t m = 0; m < k; m++) {
			struct smtp_rcpt_lookup *lk = &j->lk[idx[m]];
			if (r < 0 || rcs[m] < 0) {
				lk->result = -1;
				lk->error = strdup(r < 0 && err != NULL ? err : "invalid address");
			} else {
				lk->result = rcs[m] > 0 ? 1 : 0;
				lk->accounts = res[m];
				lk->forwards = fwd[m];
			}
		}
		free(err);
	}
	free(fwd);
	free(addrs);
	free(idx);
	free(res);
	free(rcs);
}

/* Answers a RCPT whose lookup is done: the recipient joins the transaction, or
 * the reply says why not. Takes *addr, *orcpt and lk->accounts over when the
 * recipient is accepted. */
static void smtp_rcpt_finish(struct smtp_session *s, char **addr, unsigned notify, char **orcpt,
			     struct smtp_rcpt_lookup *lk)
{
	/* RFC 5321 4.5.3.1.8: a server that limits recipients answers 452 and the
	 * client sends the rest in another transaction; not a client error. */
	if (s->tx->nrcpts >= s->lim.max_recipients) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	char esc[300];
	log_escape(*addr, strlen(*addr), 256, esc, sizeof(esc));
	switch (lk->result) {
	case 1:
	case 3: {
		struct smtp_rcpt *r = calloc(1, sizeof(*r));
		if (r == NULL) {
			smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
			break;
		}
		if (s->submission &&
		    !ratelimit_take(s->c->srv->ratelimit, s->auth_user, s->lim.rate_limit,
				    server_now_ms())) {
			free(r);
			log_warn(s->c->sid, "event=rcpt to=\"%s\" result=rate-limited user=%s", esc,
				 s->auth_user);
			smtp_reply(s, "452 4.7.1 Sending rate limit exceeded, try again later");
			break;
		}
		r->remote = lk->result == 3;
		r->addr = *addr;
		r->accounts = lk->accounts;
		r->forwards = lk->forwards;
		lk->forwards = NULL;
		r->notify = notify;
		r->orcpt = *orcpt;
		*addr = NULL;
		lk->accounts = NULL;
		*orcpt = NULL;
		*s->tx->rcpt_tail = r;
		s->tx->rcpt_tail = &r->next;
		s->tx->nrcpts++;
		log_info(s->c->sid, "event=rcpt to=\"%s\" result=%s", esc,
			 r->remote                                      ? "queued"
			 : r->forwards != NULL && r->accounts == NULL ? "forward"
			 : r->forwards != NULL                        ? "ok+forward"
			                                              : "ok");
		smtp_reply(s, "250 2.1.5 Ok");
		break;
	}
	case 0:
		log_info(s->c->sid, "event=rcpt to=\"%s\" result=unknown-user", esc);
		smtp_reply_error(s, "550 5.1.1 User unknown");
		break;
	case 2:
		log_info(s->c->sid, "event=rcpt to=\"%s\" result=relay-denied", esc);
		smtp_reply_error(s, "554 5.7.1 Relay access denied");
		break;
	case 4:
		log_info(s->c->sid, "event=rcpt to=\"%s\" result=srs-invalid", esc);
		smtp_reply_error(s, "550 5.7.1 Invalid or expired SRS address");
		break;
	default: {
		char eesc[600];
		log_error(s->c->sid, "event=rcpt to=\"%s\" result=store-error error=\"%s\"", esc,
			  log_escape_str(lk->error, eesc, sizeof(eesc)));
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		break;
	}
	}
}

static void smtp_rcpt_job_free(struct smtp_rcpt_job *j)
{
	free(j->addr);
	free(j->orcpt);
	for (size_t i = 0; i < j->n; i++)
		smtp_rcpt_lookup_clear(&j->lk[i]);
	free(j->lk);
	free(j);
}

static void smtp_rcpt_job_done(void *arg)
{
	struct smtp_rcpt_job *j = arg;
	struct smtp_session *s = j->s;
	if (!smtp_session_gone(s) && s->tx != NULL) {
		smtp_rcpt_finish(s, &j->addr, j->notify, &j->orcpt, &j->lk[0]);
		/* the results for the RCPTs behind it, used as their commands come */
		if (j->n > 1) {
			smtp_tx_ahead_free(s->tx);
			s->tx->ahead = j->lk;
			s->tx->nahead = j->n;
			s->tx->ahead_next = 1;
			j->lk = NULL;
			j->n = 0;
		}
	}
	smtp_rcpt_job_free(j);
	if (!smtp_session_gone(s))
		smtp_session_unpark(s);
}

/* Adds the lookups of the RCPT commands pipelined behind the current one (the
 * input buffer, peeked at; up to the first other command) to j->lk. Lines that
 * are not well-formed RCPTs with an address are passed over: their commands
 * answer without a lookup. Best effort: what is not resolved here gets its own
 * job. */
static void smtp_rcpt_look_ahead_in(struct smtp_session *s, struct smtp_rcpt_job *j,
                                    char line[SMTP_COMMAND_LINE_MAX + 1])
{
	struct evbuffer *in = line_session_input(s->ls);
	if (in == NULL || line_session_discarding(s->ls))
		return;
	size_t cap = 1;
	struct evbuffer_ptr pos;
	evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
	while (j->n < SMTP_RCPT_AHEAD_MAX) {
		size_t eol_len = 0;
		struct evbuffer_ptr eol = evbuffer_search_eol(in, &pos, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos < 0)
			return;
		size_t len = (size_t)(eol.pos - pos.pos);
		/* the line reader's limit, a bare LF counted as CRLF: longer lines are
		 * refused by it, and the rest is left to the commands themselves */
		if (len + 1 > SMTP_COMMAND_LINE_MAX + 1)
			return;
		if (evbuffer_copyout_from(in, &pos, line, len) != (ev_ssize_t)len)
			return;
		bool cr = len > 0 && line[len - 1] == '\r';
		if (cr)
			len--;
		if (len + 2 > SMTP_COMMAND_LINE_MAX)
			return;
		line[len] = '\0';
		if (evbuffer_ptr_set(in, &pos, len + (cr ? 1 : 0) + eol_len, EVBUFFER_PTR_ADD) < 0)
			return;
		struct smtp_command cmd;
		const char *error;
		if (smtp_command_parse(line, len, &cmd, &error) != SMTP_PARSE_OK ||
		    cmd.verb != SMTP_VERB_RCPT)
			return;
		struct smtp_rcpt_args args;
		if (smtp_rcpt_args_parse(cmd.args, cmd.args_len, s->tx->smtputf8, smtp_session_ext(s),
					 &args, &error) != SMTP_PARSE_OK)
			continue;
		if (args.to.null || args.to.addr == NULL) {
			smtp_rcpt_args_free(&args);
			continue;
		}
		if (j->n == cap) {
			size_t ncap = cap < 8 ? 8 : cap * 2;
			struct smtp_rcpt_lookup *nl = realloc(j->lk, ncap * sizeof(*nl));
			if (nl == NULL) {
				smtp_rcpt_args_free(&args);
				return;
			}
			j->lk = nl;
			cap = ncap;
		}
		int r = smtp_rcpt_lookup_init(s, &args, &j->lk[j->n]);
		smtp_rcpt_args_free(&args);
		if (r < 0)
			return;
		j->n++;
	}
}

/* The copy of each line peeked at is wiped afterwards: the line behind the
 * RCPTs may be anything, an AUTH response included. */
static void smtp_rcpt_look_ahead(struct smtp_session *s, struct smtp_rcpt_job *j)
{
	char line[SMTP_COMMAND_LINE_MAX + 1];
	smtp_rcpt_look_ahead_in(s, j, line);
	explicit_bzero(line, sizeof(line));
}

void smtp_cmd_rcpt(struct smtp_session *s, const struct smtp_command *cmd)
{
	struct smtp_rcpt_args args;
	const char *error = "bad syntax";
	enum smtp_parse_result pr =
		smtp_rcpt_args_parse(cmd->args, cmd->args_len, s->tx->smtputf8, smtp_session_ext(s),
				     &args, &error);
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
	if (args.to.null || args.to.addr == NULL) {
		smtp_rcpt_args_free(&args);
		smtp_reply_error(s, "501 5.5.4 Bad recipient address");
		return;
	}
	/* RFC 5321 4.5.3.1.8: checked before any lookup (see smtp_rcpt_finish) */
	if (s->tx->nrcpts >= s->lim.max_recipients) {
		smtp_rcpt_args_free(&args);
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	struct smtp_rcpt_job *j = calloc(1, sizeof(*j));
	struct smtp_rcpt_lookup *lk = calloc(1, sizeof(*lk));
	char *addr = strdup(args.to.addr);
	if (j == NULL || lk == NULL || addr == NULL || smtp_rcpt_lookup_init(s, &args, lk) < 0) {
		free(j);
		free(lk);
		free(addr);
		smtp_rcpt_args_free(&args);
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	unsigned notify = args.notify_bits;
	char *orcpt = args.orcpt; /* taken over */
	args.orcpt = NULL;
	smtp_rcpt_args_free(&args);
	/* resolved already by the job of an earlier RCPT of this pipeline? (entries
	 * passed over belong to commands that answered without a lookup) */
	struct smtp_tx *tx = s->tx;
	for (size_t i = tx->ahead_next; i < tx->nahead; i++) {
		if (!smtp_rcpt_lookup_same(&tx->ahead[i], lk))
			continue;
		tx->ahead_next = i + 1;
		smtp_rcpt_finish(s, &addr, notify, &orcpt, &tx->ahead[i]);
		smtp_rcpt_lookup_clear(&tx->ahead[i]);
		smtp_rcpt_lookup_clear(lk);
		free(lk);
		free(j);
		free(addr);
		free(orcpt);
		return;
	}
	smtp_tx_ahead_free(tx);
	j->s = s;
	j->store = s->c->srv->store;
	j->submission = s->submission;
	snprintf(j->srs_secret, sizeof(j->srs_secret), "%s", s->lim.srs_secret);
	j->addr = addr;
	j->notify = notify;
	j->orcpt = orcpt;
	j->lk = lk;
	j->n = 1;
	smtp_rcpt_look_ahead(s, j);
	if (j->n > 1)
		log_info(s->c->sid, "event=rcpt-lookup rcpts=%zu", j->n);
	/* batched: the RCPTs of every session of this loop in this pass share one
	 * worker round trip */
	if (conn_submit_batched(s->c, smtp_rcpt_job_run, smtp_rcpt_job_done, j) < 0) {
		smtp_rcpt_job_free(j);
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	smtp_session_park(s);
}
