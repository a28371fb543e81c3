/* Server side of SASL (RFC 4422) shared by SMTP AUTH (RFC 4954), POP3 AUTH (RFC 5034)
 * and IMAP AUTHENTICATE (RFC 9051 6.2.2): PLAIN (RFC 4616), LOGIN
 * (draft-murchison-sasl-login), SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802,
 * RFC 7677, channel binding tls-exporter per RFC 9266).
 *
 * Pure protocol logic: no I/O, no store access, no base64 on the wire (the protocol
 * layer decodes the client's base64 with core/base64.h and encodes the challenges).
 * Anything that needs the store or a slow hash is handed back to the caller as
 * SASL_STEP_LOOKUP: the caller runs the lookup on a worker thread (sasl_lookup_run,
 * thread-safe, no loop state; in auth/sasl_lookup.c so that this file links without
 * the store) and then calls sasl_server_step again with no input.
 *
 * Limits: every client message is at most SASL_MSG_MAX bytes (longer is
 * SASL_STEP_MALFORMED); user names, authorization identities and PLAIN/LOGIN
 * passwords at most SASL_FIELD_MAX bytes. User names and authzids must be UTF-8 with
 * no control characters; passwords may hold any byte but NUL.
 *
 * SASLprep (RFC 4013) is not applied, neither to PLAIN/LOGIN passwords (they are
 * compared with the stored crypt(3) hash as given) nor when deriving SCRAM keys
 * (scram_credentials_make); passwords that are ASCII, or that the client sends in
 * the same normalization as when they were set, are unaffected. */
#ifndef HERMOD_AUTH_SASL_H
#define HERMOD_AUTH_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

#define SASL_MSG_MAX 1024  /* bytes of one decoded client message */
#define SASL_FIELD_MAX 255 /* user name, authzid, password (RFC 4616 2: at least 255) */

enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_SCRAM_SHA_256,
	SASL_MECH_SCRAM_SHA_256_PLUS,
};

#define SASL_MECH_BIT(m) (1u << (unsigned)(m))
#define SASL_MECHS_ALL                                                                       \
	(SASL_MECH_BIT(SASL_MECH_PLAIN) | SASL_MECH_BIT(SASL_MECH_LOGIN) |                   \
	 SASL_MECH_BIT(SASL_MECH_SCRAM_SHA_256) | SASL_MECH_BIT(SASL_MECH_SCRAM_SHA_256_PLUS))
/* The default of [auth] mechanisms: SCRAM-SHA-256 PLAIN LOGIN. SCRAM-SHA-256-PLUS
 * is off by default: GNU SASL (mutt 2.2 on Debian) picks it whenever it is
 * offered, cannot supply tls-exporter channel binding, cancels with "*" and
 * then reads the server's -ERR as the answer to its next command, so it never
 * logs in. Clients that do channel binding still get SCRAM over TLS. */
#define SASL_MECHS_DEFAULT                                                                   \
	(SASL_MECH_BIT(SASL_MECH_PLAIN) | SASL_MECH_BIT(SASL_MECH_LOGIN) |                   \
	 SASL_MECH_BIT(SASL_MECH_SCRAM_SHA_256))

/* Mechanism by name (case-insensitive), whether enabled or not; -1 if unknown. */
int sasl_mech_lookup(const char *name, size_t len);
/* An enabled mechanism by name (case-insensitive); -1 if unknown or not enabled
 * (protocols answer both as "unrecognized authentication type"). */
int sasl_mech_from_name(const char *name, size_t len);
const char *sasl_mech_name(enum sasl_mech mech);

/* The process-wide set of enabled mechanisms ([auth] mechanisms), a mask of
 * SASL_MECH_BIT()s; SASL_MECHS_DEFAULT until set. Set once at start-up (before
 * the loops run; safe to call later too: the value is atomic, and a session
 * sees the old or the new set). sasl_server_new and POP3 USER/PASS do not look
 * at it: protocols check sasl_mech_from_name before starting an exchange. */
void sasl_mechs_set(unsigned mask);
unsigned sasl_mechs_get(void);
bool sasl_mech_enabled(enum sasl_mech mech);
/* Parses a list of mechanism names separated by blanks or commas ("PLAIN,
 * SCRAM-SHA-256"; case-insensitive, repeats allowed) into *mask_r. Returns 1,
 * or -1 with a message in error[error_len] (unknown name, empty list). */
int sasl_mechs_parse(const char *list, unsigned *mask_r, char *error, size_t error_len);

/* Space-separated list of the enabled mechanisms to advertise, strongest first
 * (SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN LOGIN), where
 * plaintext_ok: PLAIN and LOGIN may be used (TLS, or the loopback exception);
 * channel_binding: tls-exporter data is available (TLS 1.3, or TLS 1.2 with EMS),
 * without which -PLUS is left out. May be "" (e.g. only PLAIN enabled and
 * plaintext_ok false). A static string, valid for ever. */
const char *sasl_mechs_advertised(bool plaintext_ok, bool channel_binding);

enum sasl_step {
	SASL_STEP_CHALLENGE, /* send *out (may be empty) to the client, wait for its response */
	SASL_STEP_LOOKUP,    /* run sasl_lookup_run(lookup) off the loop, then step(NULL, 0) */
	SASL_STEP_OK,        /* authenticated as sasl_server_user(); *out (if not NULL) is
	                        the final server data (SCRAM server-final "v=...": SMTP
	                        sends it as a last 334 challenge or in the 235 reply per
	                        protocol) */
	SASL_STEP_FAIL,      /* wrong credentials / unknown user / refused identity or
	                        channel binding: "authentication failed" (SMTP 535 5.7.8) */
	SASL_STEP_MALFORMED, /* client sent something that breaks the mechanism's syntax
	                        (SMTP 501 5.5.2) */
	SASL_STEP_TEMPFAIL,  /* the lookup failed (store error) or a local resource
	                        failed (randomness, memory): a temporary failure, e.g.
	                        SMTP 454 4.7.0, IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP] */
};
/* OK, FAIL, MALFORMED and TEMPFAIL end the exchange: further steps return
 * SASL_STEP_MALFORMED. */

struct sasl_server;

/* The lookup a step needs (owned by the sasl_server; the caller only passes it to
 * sasl_lookup_run, or in tests fills the results by hand). */
struct sasl_lookup {
	char *user;      /* authentication identity (an account address) */
	char *password;  /* PLAIN/LOGIN: verify this password (wiped and freed by
	                    sasl_lookup_run as soon as it is used) */
	bool want_scram; /* SCRAM: fetch the credentials, no password to verify */
	/* results, filled by sasl_lookup_run (malloc'd, freed by the sasl_server): */
	int result;    /* 1 verified / found, 0 no such user or wrong password, -1 error */
	char *scram;   /* SCRAM: the account's stored SCRAM credentials, or NULL
	                  (an account without them fails like an unknown user) */
	char *account; /* canonical account address on success (NULL: user) */
	char *error;   /* on -1: for the log */
};

/* cb_data: the tls-exporter channel binding value (32 bytes, RFC 9266), or NULL when
 * the connection has none (SCRAM-SHA-256-PLUS then fails). It is copied. A non-NULL
 * cb_data with SCRAM-SHA-256-PLUS enabled means -PLUS was advertised, which matters
 * for the RFC 5802 section 6 downgrade check ("y" flag). Returns NULL only when out of memory. */
struct sasl_server *sasl_server_new(enum sasl_mech mech, const unsigned char *cb_data,
                                    size_t cb_len);
void sasl_server_free(struct sasl_server **s);

/* Feeds the client's (base64-decoded) response. For the first step in/inlen is
 * NULL/0 when the client sent no initial response; an empty initial response
 * (SMTP "AUTH PLAIN =") is treated the same way: PLAIN and SCRAM answer an empty
 * challenge, LOGIN "Username:". After SASL_STEP_LOOKUP in/inlen must be NULL/0.
 * *out and *outlen point into the sasl_server (valid until the next call or free);
 * *out is NULL when there is nothing to send. The caller should wipe its copy of
 * the client's message (it may hold a password). */
enum sasl_step sasl_server_step(struct sasl_server *s, const unsigned char *in, size_t inlen,
                                const unsigned char **out, size_t *outlen);
/* Valid after SASL_STEP_LOOKUP. */
struct sasl_lookup *sasl_server_lookup(struct sasl_server *s);
/* Valid after SASL_STEP_OK: the canonical account address; NULL before. */
const char *sasl_server_user(const struct sasl_server *s);
/* After a step: a short reason for the log (never secrets; "" when none). */
const char *sasl_server_reason(const struct sasl_server *s);
/* The authentication identity the client claimed (for logging failures and for
 * the per-account throttle), once known; NULL before. Untrusted: escape it. */
const char *sasl_server_claimed_user(const struct sasl_server *s);

/* Tests only: use nonce (printable ASCII, no ',') as the server part of the SCRAM
 * nonce instead of a random one. Call before the step that produces server-first. */
void sasl_server_set_test_nonce(struct sasl_server *s, const char *nonce);

/* Runs a lookup against the store (worker thread): PLAIN/LOGIN fetch the account's
 * hash and verify the password (password_verify; an unknown user costs a hash too);
 * SCRAM fetches the credentials. Never leaves the password in memory. */
void sasl_lookup_run(struct store *st, struct sasl_lookup *l);

/* SCRAM-SHA-256 credentials for storing with an account when its password is set:
 * "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>" (the format
 * Dovecot and others use). Random 16-byte salt; iter 0 means 4096 (the RFC 7677
 * minimum), otherwise 4096..10000000. Slow (PBKDF2): worker threads only.
 * Returns 1 with *creds_r malloc'd, -1 error (bad iter, randomness, memory). */
int scram_credentials_make(const char *password, unsigned iter, char **creds_r);
/* The same with a given salt (1..64 bytes): for tests and for importing. */
int scram_credentials_make_salt(const char *password, unsigned iter, const unsigned char *salt,
                                size_t salt_len, char **creds_r);

#endif
