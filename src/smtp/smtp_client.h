/* The SMTP client (RFC 5321 as the sending side): one connection to one address
 * of one destination, delivering one message to the recipients of that
 * destination, on an event loop. Routing (which host, which address, what next
 * when this one fails) is the queue runner's (src/delivery/); this file speaks
 * SMTP: greeting, EHLO (HELO fallback), STARTTLS whenever offered, MAIL with the
 * envelope's parameters as far as the peer supports them, RCPT, DATA with the
 * wire copy streamed from the stored blob in worker steps, QUIT. With PIPELINING
 * MAIL, the RCPTs and DATA go out together (RFC 2920 3.1). docs/delivery.md
 * describes the rules and their reasons. */
#ifndef HERMOD_SMTP_SMTP_CLIENT_H
#define HERMOD_SMTP_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

struct event_base;
struct worker_pool;
struct worker_inbox;
struct smtp_client;

/* Where a recipient stands after the attempt. */
enum smtp_client_result {
	SMTP_CLIENT_UNTRIED = 0, /* the attempt ended before this recipient was decided */
	SMTP_CLIENT_DELIVERED,   /* the peer took responsibility (2xx after the data) */
	SMTP_CLIENT_DEFERRED,    /* 4xx: try again later */
	SMTP_CLIENT_BOUNCED,     /* 5xx, or a message this peer cannot take */
};

struct smtp_client_rcpt {
	const char *addr;
	unsigned notify;   /* STORE_NOTIFY_* bits (0 = not given) */
	const char *orcpt; /* ORCPT as given at submission (addr-type;xtext), passed on as is */
	/* OUT */
	enum smtp_client_result result;
	char status[16]; /* RFC 3463 code of the outcome: "2.0.0", "5.1.1", ... */
	char *reply;     /* the remote reply on one line (smtp_reply_format), or our reason;
	                    malloc'd, the caller frees */
	bool remote;     /* reply came from the peer (not our own reason) */
};

struct smtp_client_msg {
	const char *sender; /* "" for <> */
	int body;           /* STORE_BODY_* */
	bool smtputf8;
	/* REQUIRETLS (RFC 8689): sent with MAIL; a peer that does not offer it gets
	 * nothing (5.7.30). The TLS policy that goes with it is params.tls_policy. */
	bool requiretls;
	const char *envid; /* as given (xtext), or NULL */
	int ret;           /* STORE_RET_* */
	/* The stored message: the wire copy is read from fd at [off, off + len)
	 * (the blob range, past the local trace fields). The fd stays the caller's. */
	int fd;
	uint64_t off, len;
	/* Header fields sent before the stored message (DKIM-Signature), CRLF line
	 * ends, or NULL: already in wire form, dot-stuffed like the rest. */
	const char *prefix;
	size_t prefix_len;
	struct smtp_client_rcpt *rcpts;
	size_t nrcpts;
};

/* What TLS the destination requires: the runner's policy decision (MTA-STS,
 * DANE; docs/delivery.md). */
enum smtp_client_tls {
	/* STARTTLS whenever offered; the certificate is checked and the result
	 * recorded (report.tls_verified), never required */
	SMTP_CLIENT_TLS_OPPORTUNISTIC = 0,
	/* STARTTLS required, the chain verified against the CA store of the TLS
	 * context and the certificate valid for `host` (MTA-STS enforce, RFC 8461
	 * 4.2) */
	SMTP_CLIENT_TLS_VERIFY,
	/* STARTTLS required, the peer authenticated by the TLSA records (RFC 7672
	 * 3, OpenSSL's DANE verifier); with ntlsa 0 (records exist, none usable:
	 * RFC 7672 2.2) encrypted without authentication */
	SMTP_CLIENT_TLS_DANE,
};

struct dns_tlsa;

struct smtp_client_params {
	struct event_base *base;
	struct worker_pool *pool; /* message reads */
	struct worker_inbox *inbox;
	const char *helo;   /* our host name */
	SSL_CTX *tls;       /* client context for STARTTLS; NULL: never */
	bool tls_disabled;  /* this attempt without STARTTLS (retry after a failed handshake);
	                       only with SMTP_CLIENT_TLS_OPPORTUNISTIC */
	enum smtp_client_tls tls_policy;
	const char *tls_policy_name; /* what asked for it, in reasons ("MTA-STS"); NULL ok */
	/* SMTP_CLIENT_TLS_DANE: the usable TLSA records (usage 2 or 3: RFC 7672
	 * 3.1.3); host is the TLSA base domain and reference name */
	const struct dns_tlsa *tlsa;
	size_t ntlsa;
	/* a further name a DANE-TA certificate may carry (the next-hop domain:
	 * RFC 7672 3.2.2), or NULL */
	const char *tls_name2;
	const char *host;   /* the peer's host name (MX name): SNI, certificate name, logs */
	const struct sockaddr *addr;
	socklen_t addrlen;
	const struct sockaddr *source; /* bind address or NULL */
	socklen_t sourcelen;
	/* AUTH (RFC 4954) with PLAIN or LOGIN, only ever inside TLS; NULL: none */
	const char *auth_user, *auth_pass;
	/* Seconds a connection whose transactions all ended may be kept open for
	 * the next message (smtp_client_reuse); 0: QUIT at the end. */
	unsigned idle_keep;
	/* Timeouts in seconds (RFC 5321 4.5.3.2); 0: the RFC's value. */
	unsigned connect_timeout; /* default 30 */
	unsigned command_timeout; /* greeting, EHLO, MAIL, RCPT: default 300 */
};

/* How TLS went on the connection, as TLS reports count it (RFC 8460 4.3). */
enum smtp_client_tls_result {
	SMTP_CLIENT_TLS_NONE = 0,      /* not got that far, or TLS not tried (disabled) */
	SMTP_CLIENT_TLS_OK,            /* negotiated, authenticated when the policy asks */
	SMTP_CLIENT_TLS_NO_STARTTLS,   /* starttls-not-supported (or refused) */
	SMTP_CLIENT_TLS_HANDSHAKE,     /* the handshake failed: validation-failure */
	SMTP_CLIENT_TLS_HOST_MISMATCH, /* certificate-host-mismatch */
	SMTP_CLIENT_TLS_EXPIRED,       /* certificate-expired */
	SMTP_CLIENT_TLS_UNTRUSTED,     /* certificate-not-trusted */
	SMTP_CLIENT_TLS_DANE_MISMATCH, /* validation-failure: no TLSA record matched */
};

/* What the attempt found; valid during the done callback. */
struct smtp_client_report {
	/* true: nothing was decided for any recipient (connection refused or lost,
	 * timeout, greeting or EHLO refused, TLS handshake failed, MAIL 4xx): the
	 * runner may try the next address. reason says why. */
	bool try_next;
	/* with try_next: the TLS handshake failed (the caller may retry this address
	 * without STARTTLS, as opportunistic TLS allows) */
	bool tls_failed;
	/* with try_next: the peer did not meet params.tls_policy (no STARTTLS, or
	 * a certificate that did not authenticate); never retried in plain text */
	bool tls_policy_failed;
	const char *reason; /* one line, or NULL when everything went through */
	const char *tls;    /* "TLSv1.3/TLS_AES_256_GCM_SHA384" or NULL (plain text) */
	/* the peer's certificate chain and name verified (DANE: a TLSA record
	 * matched) */
	bool tls_verified;
	enum smtp_client_tls_result tls_result;
	/* after a handshake: whether the certificate would have authenticated the
	 * peer (OK) or why not, whatever the policy (MTA-STS testing mode reports
	 * it); SMTP_CLIENT_TLS_NONE without TLS */
	enum smtp_client_tls_result tls_auth;
	const char *local_ip; /* our address on the connection, "" when not connected */
	/* the connection is kept open (params.idle_keep): the client is now the
	 * caller's, to smtp_client_park, smtp_client_reuse or smtp_client_close */
	bool idle;
	/* the attempt ran on a reused connection (a failure may just be that the
	 * connection went stale: worth a fresh one) */
	bool reused;
};

typedef void smtp_client_done_fn(void *ctx, const struct smtp_client_report *rep);

/* Starts the attempt. done is called exactly once, later, on the loop of base,
 * unless the attempt is cancelled. msg and params (and what they point to) must
 * stay valid until then. 1 ok; -1 with *error_r when it cannot start. */
int smtp_client_start(const struct smtp_client_params *params, struct smtp_client_msg *msg,
                      smtp_client_done_fn *done, void *ctx, struct smtp_client **c_r,
                      char **error_r);
/* Ends an attempt without calling done (server shutdown), or drops an idle
 * connection. NULL ok. */
void smtp_client_cancel(struct smtp_client **c);

/* An idle connection (rep.idle) waits: lost(ctx) is called (on the loop) if the
 * peer closes it, says something, or it stays idle longer than idle_keep; the
 * client is freed after that call. */
void smtp_client_park(struct smtp_client *c, void (*lost)(void *ctx), void *ctx);
/* The next message over an idle connection: done is called as for
 * smtp_client_start (never from inside this call). The connection's host and
 * TLS state stay as they were. 1 ok, -1 when it cannot start (then c is freed). */
int smtp_client_reuse(struct smtp_client *c, struct smtp_client_msg *msg,
                      smtp_client_done_fn *done, void *ctx);
/* QUIT on an idle connection, then freed; no callback. NULL ok. */
void smtp_client_close(struct smtp_client **c);
/* The peer address of a client. */
const struct sockaddr *smtp_client_addr(const struct smtp_client *c, socklen_t *len_r);

#endif
