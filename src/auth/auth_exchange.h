/* One SASL authentication exchange on a connection, for any protocol (SMTP AUTH,
 * POP3 AUTH and USER/PASS, IMAP AUTHENTICATE/LOGIN): runs the mechanism
 * (auth/sasl.h), base64 on the wire, the credential lookup on the password-hashing
 * pool, brute-force throttling (auth/throttle.h) with its failure delay, and the
 * log lines. What it needs from the server (throttle, store, hashing pool, clock)
 * comes from the connection's auth context, c->auth (auth/auth_ctx.h). The protocol only frames what the driver hands it: a challenge
 * ("334 ..." / "+ ..."), success, or one of the failure outcomes.
 *
 * Lifetime: made by the protocol session when AUTH starts and freed by it when
 * the exchange has ended (any callback below is the end except challenge), or with
 * the session. While a lookup runs the connection has a worker job pending, so
 * the session (and the exchange) stay allocated until it completes; the driver
 * calls nothing on a connection that has been closed or is saying goodbye. */
#ifndef HERMOD_AUTH_AUTH_EXCHANGE_H
#define HERMOD_AUTH_AUTH_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/sasl.h"

struct conn;
struct auth_exchange;

enum auth_outcome {
	AUTH_FAILED,      /* wrong credentials or unknown user (answered after the delay) */
	AUTH_MALFORMED,   /* the client broke the mechanism's syntax */
	AUTH_UNDECODABLE, /* a response that is not base64 */
	AUTH_CANCELLED,   /* the client sent "*" */
	AUTH_THROTTLED,   /* too many failures for this IP or account */
	AUTH_TEMPFAIL,    /* store error or resource trouble */
};

struct auth_exchange_ops {
	/* Send a continuation carrying b64 (may be ""); then wait for a line. */
	void (*challenge)(void *ctx, const char *b64);
	/* Authenticated as account (canonical address; copy it to keep it). */
	void (*success)(void *ctx, const char *account);
	void (*failure)(void *ctx, enum auth_outcome outcome);
	/* A lookup or a failure delay starts (true) or ends (false): stop taking
	 * input meanwhile, and take up pipelined input again afterwards. */
	void (*busy)(void *ctx, bool busy);
};

/* label names the method in logs ("PLAIN", "USER", ...). cb_data: tls-exporter
 * channel binding or NULL. NULL on out of memory. */
struct auth_exchange *auth_exchange_new(struct conn *c, enum sasl_mech mech, const char *label,
					const unsigned char *cb_data, size_t cb_len,
					const struct auth_exchange_ops *ops, void *ctx);
void auth_exchange_free(struct auth_exchange **ax);

/* Before anything else: 1 when this IP is refused by the throttle (the caller
 * answers as for AUTH_THROTTLED without starting an exchange). */
bool auth_exchange_ip_refused(struct conn *c);

/* Starts the exchange. ir is the initial response as sent (base64; "=" for an
 * empty one, RFC 4954 4 / RFC 5034 4), or NULL when there is none. */
void auth_exchange_start(struct auth_exchange *ax, const char *ir, size_t irlen);
/* Starts with a decoded first message (POP3 USER/PASS feeds a PLAIN message). */
void auth_exchange_start_raw(struct auth_exchange *ax, const unsigned char *msg, size_t len);
/* One line from the client while the exchange waits for it. */
void auth_exchange_response(struct auth_exchange *ax, const char *line, size_t len);
/* true while the exchange waits for a client line */
bool auth_exchange_waiting(const struct auth_exchange *ax);

#endif
