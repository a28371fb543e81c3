/* SMTP command line and argument parsers, and the DATA/BDAT body reader.
 * Grammar from RFC 5321 4.1.1 and 4.1.2, parameters from RFC 1870 (SIZE),
 * RFC 6152 (8BITMIME), RFC 3030 (BINARYMIME, CHUNKING), RFC 6531 (SMTPUTF8),
 * RFC 3461 (DSN) and RFC 4954 (AUTH=). */
#include "smtp/smtp_parse.h"

#include "core/str.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 3461 4.4: ENVID at most 100 characters; 4.2: ORCPT at most 500. */
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500
/* RFC 4954 5: AUTH= carries an addr-spec; bound it like a path. */
#define SMTP_AUTH_PARAM_MAX 500
/* RFC 1870: size-value = 1*20DIGIT */
#define SMTP_SIZE_DIGITS_MAX 20

struct verb_name {
	const char *name;
	enum smtp_verb verb;
	/* RFC 5321 4.1.1, RFC 3207 4: DATA, RSET, QUIT, STARTTLS take no arguments;
	 * the syntax reply for them, else NULL */
	const char *no_args;
};

static const struct verb_name verbs[] = {
    {"EHLO", SMTP_VERB_EHLO, NULL},
    {"HELO", SMTP_VERB_HELO, NULL},
    {"MAIL", SMTP_VERB_MAIL, NULL},
    {"RCPT", SMTP_VERB_RCPT, NULL},
    {"DATA", SMTP_VERB_DATA, "Syntax: DATA"},
    {"BDAT", SMTP_VERB_BDAT, NULL},
    {"RSET", SMTP_VERB_RSET, "Syntax: RSET"},
    {"NOOP", SMTP_VERB_NOOP, NULL},
    {"QUIT", SMTP_VERB_QUIT, "Syntax: QUIT"},
    {"HELP", SMTP_VERB_HELP, NULL},
    {"VRFY", SMTP_VERB_VRFY, NULL},
    {"EXPN", SMTP_VERB_EXPN, NULL},
    {"STARTTLS", SMTP_VERB_STARTTLS, "Syntax: STARTTLS"},
    {"AUTH", SMTP_VERB_AUTH, NULL},
};

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool ci_equal(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);
	return len == n && strncasecmp(s, word, n) == 0;
}

static bool ci_prefix(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);
	return len >= n && strncasecmp(s, word, n) == 0;
}

enum smtp_parse_result smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd_r,
                                          const char **error_r)
{
	size_t vlen = 0;

	cmd_r->verb = SMTP_VERB_UNKNOWN;
	cmd_r->args = "";
	cmd_r->args_len = 0;

	while (vlen < len && line[vlen] != ' ')
		vlen++;
	const struct verb_name *v = NULL;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (ci_equal(line, vlen, verbs[i].name)) {
			v = &verbs[i];
			break;
		}
	}
	if (v == NULL)
		return SMTP_PARSE_OK;
	cmd_r->verb = v->verb;

	/* RFC 5321 2.3.8 / 4.1.1: commands are US-ASCII text; no control character
	 * (NUL, bare CR or LF, TAB, DEL) has a meaning in a command line. 8-bit bytes
	 * are left to the argument parsers (RFC 6531 allows UTF-8 in paths). */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f) {
			*error_r = "invalid character in command";
			return SMTP_PARSE_SYNTAX;
		}
	}

	const char *args = line + vlen;
	size_t alen = len - vlen;
	if (alen > 0) {
		/* skip the single SP separating the verb */
		args++;
		alen--;
	}
	/* Trailing spaces are a common client quirk and never significant. */
	while (alen > 0 && args[alen - 1] == ' ')
		alen--;

	if (v->no_args != NULL && alen > 0) {
		*error_r = v->no_args;
		return SMTP_PARSE_SYNTAX;
	}
	if (v->verb == SMTP_VERB_MAIL || v->verb == SMTP_VERB_RCPT) {
		const char *kw = v->verb == SMTP_VERB_MAIL ? "FROM:" : "TO:";
		if (!ci_prefix(args, alen, kw)) {
			*error_r = v->verb == SMTP_VERB_MAIL ? "syntax: MAIL FROM:<address>"
			                                     : "syntax: RCPT TO:<address>";
			return SMTP_PARSE_SYNTAX;
		}
		size_t k = strlen(kw);
		args += k;
		alen -= k;
		/* RFC 5321 4.1.2 has no space after the colon, but many clients send
		 * one; accepting it is harmless. */
		while (alen > 0 && args[0] == ' ') {
			args++;
			alen--;
		}
	}
	cmd_r->args = alen > 0 ? args : "";
	cmd_r->args_len = alen;
	return SMTP_PARSE_OK;
}

/* ---- MAIL / RCPT parameters ---- */

struct esmtp_param {
	const char *key;
	size_t key_len;
	const char *value; /* NULL when the parameter has no "=value" */
	size_t value_len;
};

/* Parses one esmtp-param = esmtp-keyword ["=" esmtp-value] at s (RFC 5321 4.1.2).
 * The parameter ends at SP or the end of input. *utf8_r is set when the value
 * contains UTF-8. Returns the length consumed, 0 on a syntax error. */
static size_t param_scan(const char *s, size_t len, struct esmtp_param *p, bool *utf8_r,
                         const char **error_r)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
	if (len == 0 || !(is_alpha(u[0]) || is_digit(u[0]))) {
		*error_r = "invalid parameter";
		return 0;
	}
	while (i < len && (is_alpha(u[i]) || is_digit(u[i]) || u[i] == '-'))
		i++;
	p->key = s;
	p->key_len = i;
	p->value = NULL;
	p->value_len = 0;
	if (i == len || u[i] == ' ')
		return i;
	if (u[i] != '=') {
		*error_r = "invalid parameter keyword";
		return 0;
	}
	i++;
	size_t start = i;
	/* esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 3.3 adds UTF-8 */
	while (i < len && u[i] != ' ') {
		if (u[i] >= 33 && u[i] <= 126 && u[i] != '=') {
			i++;
		} else if (u[i] >= 0x80) {
			size_t n = mail_utf8_seq_len(u + i, len - i); /* RFC 6531 3.3 */
			if (n == 0) {
				*error_r = "invalid UTF-8 in parameter value";
				return 0;
			}
			*utf8_r = true;
			i += n;
		} else {
			*error_r = "invalid character in parameter value";
			return 0;
		}
	}
	if (i == start) {
		*error_r = "empty parameter value";
		return 0;
	}
	p->value = s + start;
	p->value_len = i - start;
	return i;
}

static int hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	/* RFC 3461 4: hexchar uses upper-case hex digits only */
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 3461 4: xtext = *( xchar / hexchar ); xchar = %d33-126 except "+" and "=";
 * hexchar = "+" 2(%x30-39 / %x41-46). Returns a malloc'd decoded string, or NULL
 * with *error_r set. Decoded octets must be printable ASCII (RFC 3461 4.4 ENVID,
 * 4.2 ORCPT and RFC 4954 5 AUTH addr-spec are all text), so no NUL or control
 * character can reach the result. */
static char *xtext_decode(const char *s, size_t len, const char **error_r)
{
	char *out = malloc(len + 1);
	size_t o = 0;

	if (out == NULL) {
		*error_r = "out of memory";
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			int hi = -1, lo = -1;
			if (i + 2 < len) {
				hi = hex_val((unsigned char)s[i + 1]);
				lo = hex_val((unsigned char)s[i + 2]);
			}
			if (hi < 0 || lo < 0) {
				free(out);
				*error_r = "invalid xtext";
				return NULL;
			}
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
			if (c < 0x20 || c > 0x7e) {
				free(out);
				*error_r = "invalid character in xtext";
				return NULL;
			}
		} else if (c < 33 || c > 126 || c == '=') {
			free(out);
			*error_r = "invalid xtext";
			return NULL;
		}
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* Walks the parameter list after a path: *(SP esmtp-param). One or more SP
 * separate parameters (RFC 5321 wants exactly one; more is harmless). Calls cb
 * for each; stops at the first error. */
typedef enum smtp_parse_result param_cb(void *ctx, const struct esmtp_param *p,
                                        const char **error_r);

static enum smtp_parse_result params_walk(const char *s, size_t len, bool *utf8_r, param_cb *cb,
                                          void *ctx, const char **error_r)
{
	size_t i = 0;

	if (len > 0 && s[0] != ' ') {
		*error_r = "invalid character after address";
		return SMTP_PARSE_SYNTAX;
	}
	for (;;) {
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			return SMTP_PARSE_OK;
		struct esmtp_param p;
		size_t n = param_scan(s + i, len - i, &p, utf8_r, error_r);
		if (n == 0)
			return SMTP_PARSE_SYNTAX;
		i += n;
		enum smtp_parse_result res = cb(ctx, &p, error_r);
		if (res != SMTP_PARSE_OK)
			return res;
	}
}

struct mail_ctx {
	struct smtp_mail_args *r;
	unsigned ext;
	bool seen_body;
};

struct rcpt_ctx {
	struct smtp_rcpt_args *r;
	unsigned ext;
};

static enum smtp_parse_result mail_param(void *ctx_, const struct esmtp_param *p,
                                         const char **error_r)
{
	struct mail_ctx *ctx = ctx_;
	struct smtp_mail_args *r = ctx->r;
	const char *v = p->value;
	size_t vl = p->value_len;

	if (ci_equal(p->key, p->key_len, "SIZE")) {
		/* RFC 1870 6 */
		if (r->has_size) {
			*error_r = "duplicate SIZE";
			return SMTP_PARSE_SYNTAX;
		}
		if (v == NULL || vl > SMTP_SIZE_DIGITS_MAX || str_parse_u64(v, vl, &r->size) < 0) {
			*error_r = "invalid SIZE value";
			return SMTP_PARSE_SYNTAX;
		}
		r->has_size = true;
	} else if (ci_equal(p->key, p->key_len, "BODY")) {
		if (ctx->seen_body) {
			*error_r = "duplicate BODY";
			return SMTP_PARSE_SYNTAX;
		}
		if (v != NULL && ci_equal(v, vl, "7BIT"))
			r->body = SMTP_BODY_7BIT;
		else if (v != NULL && ci_equal(v, vl, "8BITMIME"))
			r->body = SMTP_BODY_8BITMIME;
		else if (v != NULL && ci_equal(v, vl, "BINARYMIME"))
			r->body = SMTP_BODY_BINARYMIME;
		else {
			*error_r = "invalid BODY value";
			return SMTP_PARSE_SYNTAX;
		}
		ctx->seen_body = true;
	} else if (ci_equal(p->key, p->key_len, "SMTPUTF8")) {
		/* RFC 6531 3.4: no value */
		if (r->smtputf8) {
			*error_r = "duplicate SMTPUTF8";
			return SMTP_PARSE_SYNTAX;
		}
		if (v != NULL) {
			*error_r = "SMTPUTF8 takes no value";
			return SMTP_PARSE_SYNTAX;
		}
		r->smtputf8 = true;
	} else if ((ctx->ext & SMTP_EXT_REQUIRETLS) && ci_equal(p->key, p->key_len, "REQUIRETLS")) {
		/* RFC 8689 3: no value */
		if (r->requiretls) {
			*error_r = "duplicate REQUIRETLS";
			return SMTP_PARSE_SYNTAX;
		}
		if (v != NULL) {
			*error_r = "REQUIRETLS takes no value";
			return SMTP_PARSE_SYNTAX;
		}
		r->requiretls = true;
	} else if ((ctx->ext & SMTP_EXT_DSN) && ci_equal(p->key, p->key_len, "RET")) {
		/* RFC 3461 4.3 */
		if (r->ret != NULL) {
			*error_r = "duplicate RET";
			return SMTP_PARSE_SYNTAX;
		}
		const char *val;
		if (v != NULL && ci_equal(v, vl, "FULL"))
			val = "FULL";
		else if (v != NULL && ci_equal(v, vl, "HDRS"))
			val = "HDRS";
		else {
			*error_r = "invalid RET value";
			return SMTP_PARSE_SYNTAX;
		}
		r->ret = dup_n(val, 4);
		if (r->ret == NULL) {
			*error_r = "out of memory";
			return SMTP_PARSE_SYNTAX;
		}
	} else if ((ctx->ext & SMTP_EXT_DSN) && ci_equal(p->key, p->key_len, "ENVID")) {
		/* RFC 3461 4.4 */
		if (r->envid != NULL) {
			*error_r = "duplicate ENVID";
			return SMTP_PARSE_SYNTAX;
		}
		if (v == NULL || vl > SMTP_ENVID_MAX) {
			*error_r = "invalid ENVID value";
			return SMTP_PARSE_SYNTAX;
		}
		char *dec = xtext_decode(v, vl, error_r);
		if (dec == NULL)
			return SMTP_PARSE_SYNTAX;
		free(dec);
		r->envid = dup_n(v, vl);
		if (r->envid == NULL) {
			*error_r = "out of memory";
			return SMTP_PARSE_SYNTAX;
		}
	} else if (ci_equal(p->key, p->key_len, "AUTH")) {
		/* RFC 4954 5: AUTH=<> or AUTH=xtext(addr-spec) */
		if (r->auth != NULL) {
			*error_r = "duplicate AUTH";
			return SMTP_PARSE_SYNTAX;
		}
		if (v == NULL || vl > SMTP_AUTH_PARAM_MAX) {
			*error_r = "invalid AUTH value";
			return SMTP_PARSE_SYNTAX;
		}
		if (vl == 2 && v[0] == '<' && v[1] == '>') {
			r->auth = dup_n("<>", 2);
			if (r->auth == NULL)
				*error_r = "out of memory";
		} else {
			r->auth = xtext_decode(v, vl, error_r);
		}
		if (r->auth == NULL)
			return SMTP_PARSE_SYNTAX;
	} else {
		*error_r = "unsupported parameter";
		return SMTP_PARSE_PARAM;
	}
	return SMTP_PARSE_OK;
}

enum smtp_parse_result smtp_mail_args_parse(const char *args, size_t len, unsigned ext,
                                            struct smtp_mail_args *r, const char **error_r)
{
	size_t n;
	bool value_utf8 = false;

	memset(r, 0, sizeof(*r));
	/* The path is parsed with UTF-8 allowed and checked against SMTPUTF8 once
	 * the parameters are known (the keyword comes after the path). */
	if (mail_address_parse_path(args, len, true, true, &r->from, &n, error_r) < 0)
		return SMTP_PARSE_SYNTAX;
	struct mail_ctx ctx = {.r = r, .ext = ext, .seen_body = false};
	enum smtp_parse_result res =
	    params_walk(args + n, len - n, &value_utf8, mail_param, &ctx, error_r);
	if (res == SMTP_PARSE_OK && !r->smtputf8 && (r->from.utf8 || value_utf8)) {
		/* RFC 6531 3.4 */
		*error_r = "SMTPUTF8 required for this address";
		res = SMTP_PARSE_UTF8;
	}
	if (res != SMTP_PARSE_OK)
		smtp_mail_args_free(r);
	return res;
}

static bool is_atom_char(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return true;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static enum smtp_parse_result rcpt_param(void *ctx_, const struct esmtp_param *p,
                                         const char **error_r)
{
	struct rcpt_ctx *ctx = ctx_;
	struct smtp_rcpt_args *r = ctx->r;
	const char *v = p->value;
	size_t vl = p->value_len;

	if ((ctx->ext & SMTP_EXT_DSN) && ci_equal(p->key, p->key_len, "NOTIFY")) {
		/* RFC 3461 4.1: "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) */
		if (r->notify != NULL) {
			*error_r = "duplicate NOTIFY";
			return SMTP_PARSE_SYNTAX;
		}
		if (v == NULL) {
			*error_r = "invalid NOTIFY value";
			return SMTP_PARSE_SYNTAX;
		}
		char norm[32];
		size_t o = 0;
		unsigned seen = 0;
		if (ci_equal(v, vl, "NEVER")) {
			memcpy(norm, "NEVER", 5);
			o = 5;
			r->notify_bits = SMTP_NOTIFY_NEVER;
		} else {
			static const char *const words[] = {"SUCCESS", "FAILURE", "DELAY"};
			static const unsigned bits[] = {SMTP_NOTIFY_SUCCESS, SMTP_NOTIFY_FAILURE,
			                                SMTP_NOTIFY_DELAY};
			size_t start = 0;
			for (size_t i = 0; i <= vl; i++) {
				if (i < vl && v[i] != ',')
					continue;
				unsigned w;
				for (w = 0; w < 3; w++) {
					if (ci_equal(v + start, i - start, words[w]))
						break;
				}
				if (w == 3 || (seen & (1u << w)) != 0) {
					*error_r = "invalid NOTIFY value";
					return SMTP_PARSE_SYNTAX;
				}
				seen |= 1u << w;
				r->notify_bits |= bits[w];
				if (o > 0)
					norm[o++] = ',';
				size_t wl = strlen(words[w]);
				memcpy(norm + o, words[w], wl);
				o += wl;
				start = i + 1;
			}
		}
		r->notify = dup_n(norm, o);
		if (r->notify == NULL) {
			*error_r = "out of memory";
			return SMTP_PARSE_SYNTAX;
		}
	} else if ((ctx->ext & SMTP_EXT_DSN) && ci_equal(p->key, p->key_len, "ORCPT")) {
		/* RFC 3461 4.2: orcpt-parameter = addr-type ";" xtext; addr-type = atom */
		if (r->orcpt != NULL) {
			*error_r = "duplicate ORCPT";
			return SMTP_PARSE_SYNTAX;
		}
		if (v == NULL || vl > SMTP_ORCPT_MAX) {
			*error_r = "invalid ORCPT value";
			return SMTP_PARSE_SYNTAX;
		}
		size_t semi = 0;
		while (semi < vl && v[semi] != ';')
			semi++;
		if (semi == 0 || semi == vl) {
			*error_r = "invalid ORCPT value";
			return SMTP_PARSE_SYNTAX;
		}
		for (size_t i = 0; i < semi; i++) {
			if (!is_atom_char((unsigned char)v[i])) {
				*error_r = "invalid ORCPT address type";
				return SMTP_PARSE_SYNTAX;
			}
		}
		char *dec = xtext_decode(v + semi + 1, vl - semi - 1, error_r);
		if (dec == NULL)
			return SMTP_PARSE_SYNTAX;
		free(dec);
		r->orcpt = dup_n(v, vl);
		if (r->orcpt == NULL) {
			*error_r = "out of memory";
			return SMTP_PARSE_SYNTAX;
		}
	} else {
		*error_r = "unsupported parameter";
		return SMTP_PARSE_PARAM;
	}
	return SMTP_PARSE_OK;
}

enum smtp_parse_result smtp_rcpt_args_parse(const char *args, size_t len, bool utf8_ok,
                                            unsigned ext, struct smtp_rcpt_args *r,
                                            const char **error_r)
{
	size_t n;
	bool value_utf8 = false;

	memset(r, 0, sizeof(*r));
	/* RFC 5321 4.1.1.3: "<Postmaster>" without a domain, case-insensitive,
	 * must be accepted. It is the only domain-less form. */
	static const char pm[] = "<postmaster>";
	if (len >= sizeof(pm) - 1 && strncasecmp(args, pm, sizeof(pm) - 1) == 0 &&
	    (len == sizeof(pm) - 1 || args[sizeof(pm) - 1] == ' ')) {
		r->to.local = dup_n("postmaster", 10);
		r->to.addr = dup_n("postmaster", 10);
		if (r->to.local == NULL || r->to.addr == NULL) {
			smtp_rcpt_args_free(r);
			*error_r = "out of memory";
			return SMTP_PARSE_SYNTAX;
		}
		n = sizeof(pm) - 1;
	} else if (mail_address_parse_path(args, len, false, true, &r->to, &n, error_r) < 0) {
		return SMTP_PARSE_SYNTAX;
	}
	struct rcpt_ctx ctx = {.r = r, .ext = ext};
	enum smtp_parse_result res =
	    params_walk(args + n, len - n, &value_utf8, rcpt_param, &ctx, error_r);
	if (res == SMTP_PARSE_OK && (value_utf8 || r->to.utf8) && !utf8_ok) {
		/* RFC 6531 3.4 */
		*error_r = "SMTPUTF8 required for this address";
		res = SMTP_PARSE_UTF8;
	}
	if (res != SMTP_PARSE_OK)
		smtp_rcpt_args_free(r);
	return res;
}

void smtp_mail_args_free(struct smtp_mail_args *r)
{
	if (r == NULL)
		return;
	mail_address_free(&r->from);
	free(r->ret);
	free(r->envid);
	free(r->auth);
	memset(r, 0, sizeof(*r));
}

void smtp_rcpt_args_free(struct smtp_rcpt_args *r)
{
	if (r == NULL)
		return;
	mail_address_free(&r->to);
	free(r->notify);
	free(r->orcpt);
	memset(r, 0, sizeof(*r));
}

enum smtp_parse_result smtp_bdat_args_parse(const char *args, size_t len, uint64_t *size_r,
                                            bool *last_r, const char **error_r)
{
	/* RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF;
	 * chunk-size = 1*DIGIT; end-marker = "LAST" */
	size_t i = 0;

	while (len > 0 && args[len - 1] == ' ')
		len--;
	while (i < len && is_digit((unsigned char)args[i]))
		i++;
	if (i == 0 || str_parse_u64(args, i, size_r) < 0) {
		*error_r = i == 0 ? "syntax: BDAT <size> [LAST]" : "chunk size too large";
		return SMTP_PARSE_SYNTAX;
	}
	*last_r = false;
	if (i == len)
		return SMTP_PARSE_OK;
	if (args[i] != ' ' || !ci_equal(args + i + 1, len - i - 1, "LAST")) {
		*error_r = "syntax: BDAT <size> [LAST]";
		return SMTP_PARSE_SYNTAX;
	}
	*last_r = true;
	return SMTP_PARSE_OK;
}

/* ---- body reader ----
 *
 * States. "Line start" means just after a CRLF (or at the very beginning): only
 * there does a '.' mean anything (RFC 5321 4.5.2 transparency, 4.1.1.4 end of
 * data). A bare CR or bare LF is data; it is stored as CRLF but does not make a
 * line start, so none of "\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n" can end the
 * message (SMTP smuggling).
 *
 *   LINE_START  at a line start (DATA only; BDAT never enters it)
 *   MID         inside a line
 *   CR          a CR was read inside a line; is it CRLF or bare?
 *   DOT         a '.' was read at a line start; unstuff or end?
 *   DOT_CR      ".\r" at a line start; LF ends the message
 *   DONE        the terminator was consumed
 *
 * CR, DOT and DOT_CR hold back bytes that are not yet emitted, which is what
 * makes the output independent of how the input is split. */
enum body_state {
	BODY_LINE_START = 0,
	BODY_MID,
	BODY_CR,
	BODY_DOT,
	BODY_DOT_CR,
	BODY_DONE,
};

void smtp_body_reader_init(struct smtp_body_reader *r, enum smtp_body_mode mode, size_t max_line,
                           uint64_t max_size)
{
	memset(r, 0, sizeof(*r));
	r->mode = mode;
	r->state = mode == SMTP_BODY_MODE_DATA ? BODY_LINE_START : BODY_MID;
	r->max_line = max_line;
	r->max_size = max_size;
}

/* Appends stored bytes, keeping size and too_big. 1 ok, -1 out of memory.
 * Once the limit is crossed, out holds exactly the first max_size stored bytes,
 * however the input was split, and grows no more. */
static int body_emit(struct smtp_body_reader *r, const char *p, size_t n, struct buf *out)
{
	if (n == 0)
		return 1;
	uint64_t before = r->size;
	r->size = (UINT64_MAX - r->size < n) ? UINT64_MAX : r->size + n;
	if (r->too_big)
		return 1;
	if (r->max_size != 0 && r->size > r->max_size) {
		r->too_big = true;
		n = (size_t)(r->max_size - before);
		if (n == 0)
			return 1;
	}
	return buf_append(out, p, n);
}

/* Data bytes within a line (no CR or LF). */
static int body_text(struct smtp_body_reader *r, const char *p, size_t n, struct buf *out)
{
	r->line_len = (SIZE_MAX - r->line_len < n) ? SIZE_MAX : r->line_len + n;
	/* RFC 5321 4.5.3.1.6: 1000 octets per text line including the CRLF */
	if (r->max_line != 0 && r->line_len > r->max_line)
		r->line_too_long = true;
	return body_emit(r, p, n, out);
}

/* A stored line end: CRLF, or a bare CR / bare LF written as CRLF. */
static int body_eol(struct smtp_body_reader *r, struct buf *out)
{
	if (r->max_line != 0 && (r->line_len > r->max_line || r->max_line - r->line_len < 2))
		r->line_too_long = true;
	r->line_len = 0;
	return body_emit(r, "\r\n", 2, out);
}

long smtp_body_reader_feed(struct smtp_body_reader *r, const char *in, size_t len, struct buf *out)
{
	size_t i = 0;
	bool data = r->mode == SMTP_BODY_MODE_DATA;

	if (len > LONG_MAX)
		len = LONG_MAX;
	while (i < len && r->state != BODY_DONE) {
		unsigned char c = (unsigned char)in[i];
		switch ((enum body_state)r->state) {
		case BODY_LINE_START:
			if (c == '.') {
				r->state = BODY_DOT;
				i++;
			} else {
				r->state = BODY_MID; /* reprocess c */
			}
			break;
		case BODY_MID: {
			/* fast path: copy the run up to the next CR or LF in one go */
			size_t j = i;
			while (j < len && in[j] != '\r' && in[j] != '\n')
				j++;
			if (j > i && body_text(r, in + i, j - i, out) < 0)
				return -1;
			i = j;
			if (i == len)
				break;
			if (in[i] == '\r') {
				r->state = BODY_CR;
			} else {
				/* bare LF: stored as CRLF, not a line start */
				if (body_eol(r, out) < 0)
					return -1;
			}
			i++;
			break;
		}
		case BODY_CR:
			if (body_eol(r, out) < 0)
				return -1;
			if (c == '\n') {
				/* CRLF: a real line end */
				r->state = data ? BODY_LINE_START : BODY_MID;
				i++;
			} else {
				/* bare CR: stored as CRLF, c is reprocessed mid-line */
				r->state = BODY_MID;
			}
			break;
		case BODY_DOT:
			if (c == '\r') {
				r->state = BODY_DOT_CR;
				i++;
			} else {
				/* RFC 5321 4.5.2: a line starting with '.' and having more
				 * characters loses its first '.'; c is reprocessed mid-line
				 * (a bare LF after the dot is data, not a terminator). */
				r->state = BODY_MID;
			}
			break;
		case BODY_DOT_CR:
			if (c == '\n') {
				/* <CRLF>.<CRLF>: the CRLF before the dot is already stored
				 * as the end of the last line. */
				r->state = BODY_DONE;
				r->done = true;
				i++;
			} else {
				/* ".\r" + more: the dot goes (unstuffing), the CR is bare */
				r->state = BODY_CR;
			}
			break;
		case BODY_DONE:
			break;
		}
	}
	return (long)i;
}

void smtp_body_reader_finish(struct smtp_body_reader *r, struct buf *out)
{
	/* Only a held CR carries data; a held dot at a line start would have been
	 * removed by unstuffing anyway. Memory failure here only loses the final
	 * CRLF of an output the caller cannot grow anyway. */
	if (r->state == BODY_CR || r->state == BODY_DOT_CR) {
		(void)body_eol(r, out);
		r->state = BODY_MID;
	} else if (r->state == BODY_DOT) {
		r->state = BODY_MID;
	}
}
