/* SMTP (RFC 5321) command-line and argument parsers, and the DATA/BDAT body reader.
 * Pure functions over bytes: no I/O, no replies, no logs. Fuzzed in tests/fuzz. */
#ifndef HERMOD_SMTP_PARSE_H
#define HERMOD_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "mail/address.h"

/* RFC 5321 4.5.3.1.4: command line max 512 octets including CRLF. */
#define SMTP_COMMAND_LINE_MAX 512

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_EHLO,
	SMTP_VERB_HELO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_HELP,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
};

struct smtp_command {
	enum smtp_verb verb;
	const char *args; /* points into the line (lifetime: the line); after the verb and
			     one SP; "" when none. For MAIL/RCPT it starts after "FROM:"/"TO:"
			     (case-insensitive), with optional spaces before '<' skipped. */
	size_t args_len;
};

enum smtp_parse_result {
	SMTP_PARSE_OK = 1,
	SMTP_PARSE_SYNTAX = -1,  /* reply 501 5.5.4 (or 500 5.5.2 for an unknown verb) */
	SMTP_PARSE_PARAM = -2,   /* unrecognized/unsupported MAIL/RCPT parameter: 555 5.5.4 */
	SMTP_PARSE_UTF8 = -3,    /* well-formed UTF-8 where SMTPUTF8 was not given: 553 5.6.7 */
};

/* line: one command line without its line terminator (CRLF already stripped).
 * Unknown verbs give SMTP_PARSE_OK with verb SMTP_VERB_UNKNOWN. A MAIL without
 * "FROM:" or RCPT without "TO:" gives SMTP_PARSE_SYNTAX. The verb must be followed
 * by SP or the end of the line ("MAILX" is unknown). For a known verb, a control
 * character (NUL, TAB, CR, LF, DEL) anywhere in the line is SYNTAX, and so are
 * arguments to DATA, RSET, QUIT and STARTTLS. Trailing spaces are not part of args.
 * cmd_r->args is "" (not NULL) when there are no arguments. */
enum smtp_parse_result smtp_command_parse(const char *line, size_t len,
					  struct smtp_command *cmd_r, const char **error_r);

enum smtp_body_type { SMTP_BODY_7BIT = 0, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };

/* Extensions a session advertised: the parameters they define are accepted only
 * then (RFC 5321 4.1.1.11: others get 555). */
#define SMTP_EXT_DSN 0x1u /* RFC 3461: RET, ENVID (MAIL); NOTIFY, ORCPT (RCPT) */
#define SMTP_EXT_REQUIRETLS 0x2u /* RFC 8689: REQUIRETLS (MAIL); advertised inside TLS */

/* NOTIFY (RFC 3461 4.1) as bits; 0 = not given. NEVER is never combined. */
#define SMTP_NOTIFY_NEVER 0x1u
#define SMTP_NOTIFY_SUCCESS 0x2u
#define SMTP_NOTIFY_FAILURE 0x4u
#define SMTP_NOTIFY_DELAY 0x8u

struct smtp_mail_args {
	struct mail_address from; /* null reverse-path "<>" gives from.null = true */
	bool has_size;
	uint64_t size;
	enum smtp_body_type body;
	bool smtputf8;
	bool requiretls; /* RFC 8689 3 */
	/* DSN (RFC 3461) and AUTH= (RFC 4954) values, NULL when absent; malloc'd */
	char *ret;   /* "FULL" / "HDRS" */
	char *envid; /* as given (xtext, RFC 3461 4.4), checked to decode to printable
			ASCII; a DSN or a relayed MAIL uses it as it is */
	char *auth;  /* xtext-decoded, "<>" allowed */
};

struct smtp_rcpt_args {
	/* RFC 5321 4.1.1.3: "<Postmaster>" without a domain (any case) is accepted and
	 * gives to.local = to.addr = "postmaster" with to.domain NULL; the session
	 * maps it to the postmaster of its primary domain. No other domain-less form
	 * is accepted. */
	struct mail_address to;
	char *notify; /* malloc'd or NULL; normalized upper case: "NEVER" or e.g. "SUCCESS,DELAY" */
	unsigned notify_bits; /* the same as SMTP_NOTIFY_* bits; 0 when absent */
	char *orcpt;  /* malloc'd or NULL, as given (addr-type;xtext) */
};

/* args/len: smtp_command.args of MAIL / RCPT. Path syntax per RFC 5321 4.1.2
 * (with RFC 6531 UTF-8 when utf8_ok is true — the client said SMTPUTF8 on MAIL,
 * or for MAIL itself when the parameter list contains SMTPUTF8). Source routes
 * ("<@a,@b:user@c>") are accepted and dropped (RFC 5321 4.1.2 / C.). The paths must
 * be enclosed in <>. Duplicate parameters, bad values (SIZE not a number or
 * overflowing) are SYNTAX; unknown keywords are PARAM. Parameters are separated
 * by one or more SP. A UTF-8 path or parameter value without SMTPUTF8 (MAIL) /
 * utf8_ok (RCPT) is SYNTAX. xtext values (ENVID, AUTH, ORCPT's xtext) must use
 * upper-case hex and decode to printable ASCII. ENVID <= 100, ORCPT <= 500 octets
 * (RFC 3461 4.4, 4.2). ext: the SMTP_EXT_* the session advertised; a parameter
 * of an extension not in ext is PARAM, like an unknown one. On error *r is
 * zeroed and error_r is a short static text for a reply such as
 * "501 5.5.4 <error_r>".
 * On OK the caller frees with smtp_mail_args_free / smtp_rcpt_args_free. */
enum smtp_parse_result smtp_mail_args_parse(const char *args, size_t len, unsigned ext,
					    struct smtp_mail_args *r, const char **error_r);
enum smtp_parse_result smtp_rcpt_args_parse(const char *args, size_t len, bool utf8_ok,
					    unsigned ext, struct smtp_rcpt_args *r,
					    const char **error_r);
void smtp_mail_args_free(struct smtp_mail_args *r);
void smtp_rcpt_args_free(struct smtp_rcpt_args *r);

/* BDAT argument: "<chunk-size> [LAST]". chunk size up to UINT64 without overflow. */
enum smtp_parse_result smtp_bdat_args_parse(const char *args, size_t len, uint64_t *size_r,
					    bool *last_r, const char **error_r);

/* ---- message body reader ----
 * Framing for DATA (dot-stuffed, ends only at <CRLF>.<CRLF>, RFC 5321 4.1.1.4 and
 * 4.5.2) and BDAT (raw chunks, RFC 3030). Only CRLF is a line end for framing:
 * a bare LF or bare CR never ends the message and never starts a line for
 * dot-unstuffing (SMTP smuggling). When stored, each bare LF and bare CR is written
 * as CRLF so mailbox contents are canonical RFC 5322 text. NUL bytes are kept.
 * The same normalization applies in BDAT mode (so BODY=BINARYMIME content with
 * bare CR/LF is altered). A line starting with '.' loses that dot even when a bare
 * CR or LF follows (".\n" is stored as "\r\n"). In DATA mode the CRLF before the
 * terminating dot belongs to the message, so a stored message ends with CRLF
 * (or is empty). The output is identical however the input is split; a CR (or
 * ".\r" at a line start) at the end of one feed is held until the next byte.
 * The reader starts at the beginning of a line (right after the 354 reply). */
enum smtp_body_mode { SMTP_BODY_MODE_DATA, SMTP_BODY_MODE_BDAT };

struct smtp_body_reader {
	enum smtp_body_mode mode;
	int state;             /* private */
	size_t max_line;       /* stored line length limit incl. CRLF; 0 = none */
	uint64_t max_size;     /* stored size limit; 0 = none */
	uint64_t size;         /* bytes of the message as stored so far (even when too big) */
	size_t line_len;       /* private */
	bool line_too_long;    /* a stored line exceeded max_line */
	bool too_big;          /* size exceeded max_size: out holds exactly the first
				  max_size stored bytes and grows no more */
	bool done;             /* DATA: the terminating <CRLF>.<CRLF> was consumed */
};

void smtp_body_reader_init(struct smtp_body_reader *r, enum smtp_body_mode mode,
			   size_t max_line, uint64_t max_size);
/* Consumes up to len bytes of in, appending the stored form to out (nothing more is
 * appended once too_big). Returns the number of bytes consumed: in DATA mode it
 * stops right after the terminating ".\r\n" (done = true); in BDAT mode it consumes
 * everything (the caller feeds exactly the chunk's bytes). -1 only when out
 * cannot grow for memory reasons. */
long smtp_body_reader_feed(struct smtp_body_reader *r, const char *in, size_t len,
			   struct buf *out);
/* BDAT LAST / end of message: flushes a pending bare CR (as CRLF). */
void smtp_body_reader_finish(struct smtp_body_reader *r, struct buf *out);

#endif
