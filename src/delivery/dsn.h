/* Delivery status notifications (RFC 3464, RFC 3461, RFC 6533): the bounce or
 * report hermod sends to the sender of a message it could not deliver. Pure
 * code: the original is read through a callback, the DSN written through
 * another, in pieces; nothing is held whole in memory. docs/delivery.md shows
 * the format. */
#ifndef HERMOD_DELIVERY_DSN_H
#define HERMOD_DELIVERY_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dsn_action { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED, DSN_RELAYED };

struct dsn_rcpt {
	const char *rcpt;       /* final recipient address */
	const char *orcpt;      /* ORCPT as given at submission (addr-type;xtext) or NULL */
	enum dsn_action action;
	const char *status;     /* RFC 3463 code, "5.1.1" */
	const char *remote_mta; /* the host the reply came from ("mx.example.net[192.0.2.1]:25"
	                           or a name), or NULL */
	const char *diagnostic; /* the remote reply on one line, or NULL */
	const char *reason;     /* our own explanation when there is no remote reply, or NULL */
	int64_t last_attempt;   /* unix seconds, 0 = not given */
	int64_t retry_until;    /* DSN_DELAYED: Will-Retry-Until, 0 = not given */
};

struct dsn_params {
	const char *reporting_mta; /* our host name */
	const char *from;          /* From: of the DSN, "MAILER-DAEMON@<host>" */
	const char *to;            /* the original envelope sender */
	const char *envid;         /* ENVID of the original (xtext), or NULL */
	int64_t arrival;           /* when the original was queued */
	int64_t now;               /* Date: of the DSN */
	int ret;                   /* STORE_RET_NONE / FULL / HDRS */
	bool smtputf8;             /* the original needs SMTPUTF8: RFC 6533 types */
	int body;                  /* STORE_BODY_* of the original: the returned part's
	                              Content-Transfer-Encoding (8bit, binary) */
	uint64_t orig_size;        /* octets of the original (its wire copy) */
	uint64_t full_max;         /* larger originals come back as their header only */
};

/* Reads up to len octets of the original at off: octets read, 0 at its end, -1
 * error. */
typedef long dsn_read_fn(void *ctx, void *buf, size_t len, uint64_t off);
/* Writes n octets of the DSN: 1 ok, -1 error. */
typedef int dsn_write_fn(void *ctx, const void *p, size_t n);

/* The header section of a returned original is cut at this size (at a line end)
 * when it has no end. */
#define DSN_HEADER_MAX (256u << 10)

/* Writes the DSN for rcpts[0..n) (n >= 1, all of one original). 1 ok, -1 with
 * *error_r (malloc'd). */
int dsn_build(const struct dsn_params *p, const struct dsn_rcpt *rcpts, size_t n,
              dsn_read_fn *read, void *rctx, dsn_write_fn *write, void *wctx, char **error_r);

/* Folds a header field "Name: value" (value one line) at spaces so that lines
 * stay within 78 octets where possible and never exceed 998; writes the field
 * with CRLF line ends and a final CRLF to out. 1 ok, -1 out of memory / full. */
struct buf;
int dsn_fold_field(struct buf *out, const char *name, const char *value);

#endif
