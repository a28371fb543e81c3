#include "auth/auth_exchange.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_ctx.h"
#include "auth/throttle.h"
#include "core/base64.h"
#include "core/log.h"
#include "net/server.h"

struct auth_exchange {
	struct conn *c;
	struct sasl_server *sasl;
	char label[32];
	const struct auth_exchange_ops *ops;
	void *ctx;
	char *user;         /* the identity being tried, for logs and the throttle */
	bool waiting;       /* a client line is expected */
	bool final_pending; /* server-final data went out as a challenge */
	bool busy;          /* a lookup or a throttle delay is running */
	bool done;          /* ended: no more callbacks */
	struct event *delay;
	char *won;          /* the account of a success whose reply waits for delay */
};

static void auth_exchange_step(struct auth_exchange *ax, const unsigned char *in, size_t inlen);

static bool auth_exchange_gone(const struct auth_exchange *ax)
{
	return conn_is_dead(ax->c) || ax->c->closing;
}

static void auth_exchange_end(struct auth_exchange *ax)
{
	ax->done = true;
	ax->waiting = false;
	ax->final_pending = false;
	sasl_server_free(&ax->sasl); /* wipes what it held */
}

static void auth_exchange_fail_now(struct auth_exchange *ax, enum auth_outcome outcome)
{
	auth_exchange_end(ax);
	ax->ops->failure(ax->ctx, outcome);
}

static const char *auth_exchange_user_esc(const struct auth_exchange *ax, char *buf, size_t n)
{
	if (ax->user == NULL)
		return "";
	return log_escape(ax->user, strlen(ax->user), 256, buf, n);
}

static void auth_exchange_succeed_now(struct auth_exchange *ax, char *account)
{
	log_info(ax->c->sid, "event=auth user=%s mech=%s ip=%s", account, ax->label, ax->c->ip);
	auth_exchange_end(ax);
	ax->ops->success(ax->ctx, account);
	free(account);
}

/* Right credentials: counted, answered after the throttle's delay (the same a
 * failure would get now, so that timing tells an attacker nothing). */
static void auth_exchange_succeed(struct auth_exchange *ax)
{
	const char *user = sasl_server_user(ax->sasl);
	char *account = user != NULL ? strdup(user) : NULL;
	if (account == NULL) {
		auth_exchange_fail_now(ax, AUTH_TEMPFAIL);
		return;
	}
	unsigned delay =
		throttle_success(ax->c->auth->throttle, ax->c->ip, account, ax->c->auth->now_ms());
	if (delay == 0 || ax->delay == NULL) {
		auth_exchange_succeed_now(ax, account);
		return;
	}
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	evtimer_add(ax->delay, &tv);
	sasl_server_free(&ax->sasl); /* wipes what it held; the account is known */
	ax->won = account;
	ax->busy = true;
	ax->ops->busy(ax->ctx, true);
}

static void auth_exchange_on_delay(evutil_socket_t fd, short what, void *ctx)
{
	struct auth_exchange *ax = ctx;
	char *won = ax->won;
	ax->won = NULL;
	ax->busy = false;
	if (auth_exchange_gone(ax)) {
		free(won);
		return;
	}
	if (won != NULL)
		auth_exchange_succeed_now(ax, won);
	else
		auth_exchange_fail_now(ax, AUTH_FAILED);
	ax->ops->busy(ax->ctx, false);
}

/* Wrong credentials: logged, counted, answered after the throttle's delay. */
static void auth_exchange_fail(struct auth_exchange *ax)
{
	char esc[300];
	log_warn(ax->c->sid, "event=auth-failed ip=%s mech=%s user=\"%s\" reason=\"%s\"",
		 ax->c->ip, ax->label, auth_exchange_user_esc(ax, esc, sizeof(esc)),
		 sasl_server_reason(ax->sasl));
	unsigned delay =
		throttle_failure(ax->c->auth->throttle, ax->c->ip, ax->user, ax->c->auth->now_ms());
	if (delay == 0 || ax->delay == NULL) {
		auth_exchange_fail_now(ax, AUTH_FAILED);
		return;
	}
	struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
	evtimer_add(ax->delay, &tv);
	sasl_server_free(&ax->sasl);
	ax->busy = true;
	ax->ops->busy(ax->ctx, true);
}

static void auth_exchange_lookup_run(void *arg)
{
	struct auth_exchange *ax = arg;
	sasl_lookup_run(ax->c->auth->store, sasl_server_lookup(ax->sasl));
}

static void auth_exchange_lookup_done(void *arg)
{
	struct auth_exchange *ax = arg;
	ax->busy = false;
	if (auth_exchange_gone(ax))
		return;
	auth_exchange_step(ax, NULL, 0);
	if (!ax->busy) /* not parked again by a failure delay */
		ax->ops->busy(ax->ctx, false);
}

static void auth_exchange_challenge(struct auth_exchange *ax, const unsigned char *out,
				    size_t outlen)
{
	char *b64 = NULL;
	if (base64_encode(out, outlen, &b64) < 0) {
		auth_exchange_fail_now(ax, AUTH_TEMPFAIL);
		return;
	}
	ax->waiting = true;
	ax->ops->challenge(ax->ctx, b64);
	free(b64);
}

static void auth_exchange_step(struct auth_exchange *ax, const unsigned char *in, size_t inlen)
{
	const unsigned char *out = NULL;
	size_t outlen = 0;
	enum sasl_step step = sasl_server_step(ax->sasl, in, inlen, &out, &outlen);
	struct sasl_lookup *l;
	char esc[300];

	ax->waiting = false;
	switch (step) {
	case SASL_STEP_CHALLENGE:
		auth_exchange_challenge(ax, out, outlen);
		return;
	case SASL_STEP_LOOKUP:
		l = sasl_server_lookup(ax->sasl);
		if (l != NULL && l->user != NULL && ax->user == NULL)
			ax->user = strdup(l->user);
		if (throttle_refused(ax->c->auth->throttle, ax->c->ip, ax->user,
				     ax->c->auth->now_ms())) {
			log_warn(ax->c->sid, "event=auth-refused ip=%s user=\"%s\" reason=throttled",
				 ax->c->ip, auth_exchange_user_esc(ax, esc, sizeof(esc)));
			auth_exchange_fail_now(ax, AUTH_THROTTLED);
			return;
		}
		/* the password hash (or SCRAM keys) comes from the store; yescrypt
		 * runs on the hashing pool, never on the loop */
		if (ax->c->auth->submit(ax->c, auth_exchange_lookup_run, auth_exchange_lookup_done,
					ax) < 0) {
			auth_exchange_fail_now(ax, AUTH_TEMPFAIL);
			return;
		}
		ax->busy = true;
		ax->ops->busy(ax->ctx, true);
		return;
	case SASL_STEP_OK:
		if (outlen > 0) {
			/* additional data with success (SCRAM server-final): SMTP and POP3
			 * send it as a last challenge, answered by an empty line */
			ax->final_pending = true;
			auth_exchange_challenge(ax, out, outlen);
			return;
		}
		auth_exchange_succeed(ax);
		return;
	case SASL_STEP_FAIL:
		auth_exchange_fail(ax);
		return;
	case SASL_STEP_TEMPFAIL:
		log_error(ax->c->sid, "event=auth-tempfail ip=%s reason=\"%s\"", ax->c->ip,
			  sasl_server_reason(ax->sasl));
		auth_exchange_fail_now(ax, AUTH_TEMPFAIL);
		return;
	case SASL_STEP_MALFORMED:
	default:
		/* counted like a failure, answered as a syntax error */
		log_warn(ax->c->sid, "event=auth-failed ip=%s mech=%s user=\"%s\" reason=\"%s\"",
			 ax->c->ip, ax->label, auth_exchange_user_esc(ax, esc, sizeof(esc)),
			 sasl_server_reason(ax->sasl));
		throttle_failure(ax->c->auth->throttle, ax->c->ip, ax->user, ax->c->auth->now_ms());
		auth_exchange_fail_now(ax, AUTH_MALFORMED);
		return;
	}
}

struct auth_exchange *auth_exchange_new(struct conn *c, enum sasl_mech mech, const char *label,
					const unsigned char *cb_data, size_t cb_len,
					const struct auth_exchange_ops *ops, void *ctx)
{
	struct auth_exchange *ax = calloc(1, sizeof(*ax));
	if (ax == NULL)
		return NULL;
	ax->c = c;
	ax->ops = ops;
	ax->ctx = ctx;
	snprintf(ax->label, sizeof(ax->label), "%s", label != NULL ? label : sasl_mech_name(mech));
	ax->sasl = sasl_server_new(mech, cb_data, cb_len);
	ax->delay = evtimer_new(c->loop->base, auth_exchange_on_delay, ax);
	if (ax->sasl == NULL || ax->delay == NULL) {
		auth_exchange_free(&ax);
		return NULL;
	}
	return ax;
}

void auth_exchange_free(struct auth_exchange **axp)
{
	struct auth_exchange *ax = *axp;
	if (ax == NULL)
		return;
	if (ax->delay != NULL)
		event_free(ax->delay);
	sasl_server_free(&ax->sasl);
	free(ax->user);
	free(ax->won);
	free(ax);
	*axp = NULL;
}

bool auth_exchange_ip_refused(struct conn *c)
{
	if (!throttle_refused(c->auth->throttle, c->ip, NULL, c->auth->now_ms()))
		return false;
	log_warn(c->sid, "event=auth-refused ip=%s reason=throttled", c->ip);
	return true;
}

bool auth_exchange_waiting(const struct auth_exchange *ax)
{
	return ax != NULL && !ax->done && ax->waiting;
}

void auth_exchange_start(struct auth_exchange *ax, const char *ir, size_t irlen)
{
	if (ir == NULL) {
		auth_exchange_step(ax, NULL, 0);
		return;
	}
	if (irlen == 1 && ir[0] == '=') { /* an empty initial response */
		auth_exchange_step(ax, (const unsigned char *)"", 0);
		return;
	}
	auth_exchange_response(ax, ir, irlen);
}

void auth_exchange_start_raw(struct auth_exchange *ax, const unsigned char *msg, size_t len)
{
	auth_exchange_step(ax, msg, len);
}

void auth_exchange_response(struct auth_exchange *ax, const char *line, size_t len)
{
	if (ax->done)
		return;
	ax->waiting = false;
	if (len == 1 && line[0] == '*') {
		/* RFC 4954 4, RFC 5034 4: the client cancels */
		char esc[300];
		log_info(ax->c->sid, "event=auth-cancelled ip=%s mech=%s user=\"%s\"", ax->c->ip,
			 ax->label, auth_exchange_user_esc(ax, esc, sizeof(esc)));
		auth_exchange_fail_now(ax, AUTH_CANCELLED);
		return;
	}
	if (ax->final_pending) {
		ax->final_pending = false;
		if (len != 0) {
			auth_exchange_fail_now(ax, AUTH_MALFORMED);
			return;
		}
		auth_exchange_succeed(ax);
		return;
	}
	unsigned char *data = NULL;
	size_t dlen = 0;
	if (base64_decode(line, len, &data, &dlen) < 0) {
		auth_exchange_fail_now(ax, AUTH_UNDECODABLE);
		return;
	}
	auth_exchange_step(ax, data != NULL ? data : (const unsigned char *)"", dlen);
	if (data != NULL) {
		explicit_bzero(data, dlen);
		free(data);
	}
}
