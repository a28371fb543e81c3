/* The SMTP client's parsers (RFC 5321 as the sending side): server replies,
 * EHLO capabilities, and the encoder that turns a stored message into what
 * goes on the wire. Pure functions over bytes: no I/O, no logs. Fuzzed in
 * tests/fuzz/fuzz_smtp_reply.c. docs/delivery.md describes the rules. */
#ifndef HERMOD_SMTP_SMTP_CLIENT_PARSE_H
#define HERMOD_SMTP_SMTP_CLIENT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* RFC 5321 4.5.3.1.5 sets 512 octets for a reply line; servers send longer
 * (long EHLO lines, verbose 5xx texts), so a reply line may have up to
 * SMTP_REPLY_LINE_MAX octets before its CRLF. */
#define SMTP_REPLY_LINE_MAX 4096
#define SMTP_REPLY_LINES_MAX 256
#define SMTP_REPLY_TEXT_MAX (64u << 10)

/* One complete reply. */
struct smtp_reply {
	int code;          /* 200..599 */
	char enhanced[16]; /* RFC 3463 "c.s.d" of the first line, "" when none */
	/* the text of each line (after the code and its separator, and after the
	 * enhanced code when the first line has one; each line's own enhanced code
	 * is dropped when it repeats the first's) */
	struct buf text; /* the lines' texts, each NUL-terminated */
	size_t line_off[SMTP_REPLY_LINES_MAX];
	size_t nlines;
};

enum smtp_reply_result {
	SMTP_REPLY_NEED_MORE = 0,
	SMTP_REPLY_DONE = 1,  /* p->reply is complete */
	SMTP_REPLY_ERROR = -1 /* p->error says why; the connection is not usable */
};

struct smtp_reply_parser {
	struct smtp_reply reply;
	char line[SMTP_REPLY_LINE_MAX + 2];
	size_t len; /* octets of the current line so far */
	bool done;
	const char *error;
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);
/* Ready for the next reply (after SMTP_REPLY_DONE). */
void smtp_reply_parser_reset(struct smtp_reply_parser *p);
void smtp_reply_parser_free(struct smtp_reply_parser *p);
/* Feeds data[0..len) in any split; *used_r is set to the octets consumed:
 * on DONE the rest of data belongs to the next reply (pipelining). Lines end
 * in CRLF (a bare LF is taken as a line end too). Grammar (RFC 5321 4.2):
 * Reply-code [("-" / SP) textstring] CRLF, every line with the same code,
 * first digit 2-5, second 0-5; anything else, a NUL in a line, more than
 * SMTP_REPLY_LINE_MAX octets in a line, SMTP_REPLY_LINES_MAX lines or
 * SMTP_REPLY_TEXT_MAX octets of text is SMTP_REPLY_ERROR. */
enum smtp_reply_result smtp_reply_feed(struct smtp_reply_parser *p, const char *data,
				       size_t len, size_t *used_r);
/* Line i's text (i < r->nlines). */
const char *smtp_reply_line(const struct smtp_reply *r, size_t i);
/* The reply on one line for logs and DSN Diagnostic-Code fields: "CODE
 * [ENHANCED ]text text ...", the lines joined by a space, octets outside
 * printable ASCII as '?', at most max octets (then cut, ending in "...").
 * 1 ok, -1 out of memory. */
int smtp_reply_format(const struct smtp_reply *r, struct buf *out, size_t max);

/* What a server's EHLO reply offered (RFC 5321 4.1.1.1 and the extensions'
 * RFCs). Keywords are case-insensitive. */
struct smtp_ehlo_caps {
	bool pipelining;          /* RFC 2920 */
	bool starttls;            /* RFC 3207 */
	bool eightbitmime;        /* RFC 6152 */
	bool smtputf8;            /* RFC 6531 */
	bool chunking;            /* RFC 3030 */
	bool binarymime;          /* RFC 3030 */
	bool dsn;                 /* RFC 3461 */
	bool requiretls;          /* RFC 8689 */
	bool enhancedstatuscodes; /* RFC 2034 */
	bool size;                /* RFC 1870 */
	uint64_t size_max;        /* 0: SIZE given without a fixed maximum */
	/* RFC 9422 LIMITS; 0 = not announced */
	unsigned rcptmax, mailmax, rcptdomainmax;
	char auth[256]; /* RFC 4954 AUTH mechanisms, space-separated, upper case; "" none */
};

/* Fills caps from the lines after the first of an EHLO reply (r->code 250).
 * Unknown keywords and malformed parameters are ignored (a malformed SIZE or
 * LIMITS value counts as not announced). */
void smtp_ehlo_caps_parse(const struct smtp_reply *r, struct smtp_ehlo_caps *caps);

/* ---- the wire copy of a message ----
 * A stored message becomes what is sent: every line ends in CRLF (a bare LF or
 * a bare CR becomes CRLF: RFC 5321 2.3.8, nothing a peer could read as a line
 * end other than CRLF goes out); a line longer than SMTP_WIRE_LINE_MAX octets
 * is broken with CRLF SP (RFC 5322 2.1.1; folding in a header, and what
 * Postfix does in a body); the message ends with CRLF. With dotstuff (DATA),
 * a line starting with '.' gets one more (RFC 5321 4.5.2) and the end is
 * ".CRLF"; without (BDAT, or DKIM hashing what DATA will send, before its
 * dot-stuffing) the octets are otherwise as they are. */
#define SMTP_WIRE_LINE_MAX 998

struct smtp_wire {
	bool dotstuff;
	bool cr;        /* a CR was the last octet seen */
	size_t col;     /* octets on the current output line */
	uint64_t lines_broken;
};

void smtp_wire_init(struct smtp_wire *w, bool dotstuff);
/* Appends the encoding of data[0..len) to out: at most 4 * len + 4 octets.
 * 1 ok, -1 when out is full or memory runs out. */
int smtp_wire_encode(struct smtp_wire *w, const char *data, size_t len, struct buf *out);
/* The end: a last CRLF where needed, and ".CRLF" with dotstuff. 1 ok, -1 full. */
int smtp_wire_finish(struct smtp_wire *w, struct buf *out);

#endif
