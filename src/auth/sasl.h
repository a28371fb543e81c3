/* Server side of SASL (RFC 4422) shared by SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034)
 * and IMAP AUTHENTICATE (RFC 9051 6.2.2): PLAIN (RFC 4616), LOGIN
 * (draft-murchison-sasl-login), SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802,
 * RFC 7677, channel binding tls-exporter per RFC 9266).
 *
 * Pure protocol logic: no I/O, no store access, no base64 (the protocol layer
 * decodes the client's base64 and encodes the challenges). Anything that needs the
 * store or a slow hash is handed back to the caller as SASL_STEP_LOOKUP: the caller
 * runs the lookup on a worker thread (sasl_lookup_run, thread-safe, no loop state)
 * and then calls sasl_server_step again with no input. */
#ifndef HERMOD_AUTH_SASL_H
#define HERMOD_AUTH_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_SCRAM_SHA_256,
	SASL_MECH_SCRAM_SHA_256_PLUS,
};

/* Mechanism by name (case-insensitive); -1 if unknown. */
int sasl_mech_from_name(const char *name, size_t len);
const char *sasl_mech_name(enum sasl_mech mech);
/* Space-separated list of the mechanisms to advertise:
 * plaintext_ok: PLAIN and LOGIN may be used (TLS, or the loopback exception);
 * channel_binding: tls-exporter data is available (TLS 1.3, or TLS 1.2 with EMS). */
const char *sasl_mechs_advertised(bool plaintext_ok, bool channel_binding);

enum sasl_step {
	SASL_STEP_CHALLENGE, /* send *out (may be empty) to the client, wait for its response */
	SASL_STEP_LOOKUP,    /* run sasl_lookup_run(lookup) off the loop, then step(NULL, 0) */
	SASL_STEP_OK,        /* authenticated as sasl_server_user(); *out (if any) is the
				final server data (SCRAM server-final: SMTP sends it in the
				235 reply's text or as a last 334 challenge per protocol) */
	SASL_STEP_FAIL,      /* wrong credentials / unknown user: "authentication failed" */
	SASL_STEP_MALFORMED, /* client sent something that breaks the mechanism's syntax */
};

struct sasl_server;

/* The lookup a step needs (owned by the sasl_server). */
struct sasl_lookup {
	char *user;             /* authentication identity (an account address) */
	char *password;         /* PLAIN/LOGIN: verify this password (wiped after use) */
	/* results, filled by sasl_lookup_run: */
	int result;             /* 1 verified / found, 0 no such user or wrong password, -1 error */
	char *scram;            /* SCRAM: the account's stored SCRAM credentials, or NULL */
	char *account;          /* canonical account address on success */
	char *error;            /* on -1 */
};

/* cb_data: the tls-exporter channel binding value (32 bytes, RFC 9266), or NULL. */
struct sasl_server *sasl_server_new(enum sasl_mech mech, const unsigned char *cb_data,
				    size_t cb_len);
void sasl_server_free(struct sasl_server **s);

/* Feeds the client's (base64-decoded) response; in/inlen is NULL/0 for the first
 * step when the client sent no initial response, and after a lookup. *out/*outlen
 * point into the sasl_server (valid until the next call). */
enum sasl_step sasl_server_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
				const unsigned char **out, size_t *outlen);
/* Valid after SASL_STEP_LOOKUP. */
struct sasl_lookup *sasl_server_lookup(struct sasl_server *s);
/* Valid after SASL_STEP_OK: the canonical account address. */
const char *sasl_server_user(const struct sasl_server *s);
/* After a step: a short reason for the log (never secrets). */
const char *sasl_server_reason(const struct sasl_server *s);

/* Runs a lookup against the store (worker thread): PLAIN/LOGIN fetch the account's
 * hash and verify the password (password_verify); SCRAM fetches the credentials. */
void sasl_lookup_run(struct store *st, struct sasl_lookup *l);

/* SCRAM-SHA-256 credentials for storing with an account when its password is set:
 * "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>" (the format
 * Dovecot and others use). Random 16-byte salt, iter 4096 (RFC 7677 minimum) or
 * more. Returns 1 with *creds_r malloc'd, -1 error. */
int scram_credentials_make(const char *password, unsigned iter, char **creds_r);

#endif
