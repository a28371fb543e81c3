/* SMTP paths and mailboxes, RFC 5321 4.1.2 (ABNF) and 4.1.3 (address literals),
 * with the RFC 6531 3.3 UTF-8 extensions when the caller allows them.
 *
 * The parser is strict about the grammar and never reads past len: the input is
 * untrusted bytes that may contain NUL. Results are malloc'd C strings; a NUL
 * can never reach them because no production accepts one. */
#include "mail/address.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 1035 2.3.4: 63 octets per label. */
#define DOMAIN_LABEL_MAX 63

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 5322 3.2.3 atext (RFC 5321 4.1.2 refers to it for Atom). */
static bool is_atext(unsigned char c)
{
	if (is_alpha(c) || is_digit(c))
		return true;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 5321 4.1.2 qtextSMTP: %d32-33 / %d35-91 / %d93-126. */
static bool is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* Length of one well-formed UTF-8 sequence (RFC 3629 4) at s that starts with a
 * byte >= 0x80, or 0 if it is not valid UTF-8. Overlong forms, surrogates, code
 * points above U+10FFFF and C1 controls (U+0080..U+009F) are rejected. */
size_t mail_utf8_seq_len(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff)
		return 0;
	if (cp >= 0xd800 && cp <= 0xdfff)
		return 0;
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return n;
}

/* RFC 4291 2.2 text form; the RFC 5321 4.1.3 IPv6-addr ABNF is the same set
 * except that it forbids "::" standing for a single group. RFC 4291 allows that,
 * and so do common resolvers, so we do too. */
static bool ipv4_valid(const char *s, size_t len)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= len || s[i] != '.')
				return false;
			i++;
		}
		unsigned v = 0;
		size_t digits = 0;
		while (i < len && is_digit((unsigned char)s[i]) && digits < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			digits++;
		}
		/* RFC 5321 4.1.3 Snum = 1*3DIGIT, representing 0-255 */
		if (digits == 0 || v > 255)
			return false;
	}
	return i == len;
}

static bool ipv6_valid(const char *s, size_t len)
{
	size_t i = 0;
	int groups = 0;
	bool compressed = false;

	if (len >= 2 && s[0] == ':' && s[1] == ':') {
		compressed = true;
		i = 2;
		if (i == len)
			return true;
	} else if (len > 0 && s[0] == ':') {
		return false;
	}
	for (;;) {
		/* one group: 1*4HEXDIG, or a trailing IPv4 address */
		size_t start = i;
		while (i < len && is_hex((unsigned char)s[i]) && i - start < 5)
			i++;
		if (i < len && s[i] == '.') {
			/* IPv6v4: dotted quad takes the place of the last two groups */
			if (!ipv4_valid(s + start, len - start))
				return false;
			groups += 2;
			i = len;
			break;
		}
		size_t n = i - start;
		if (n == 0 || n > 4)
			return false;
		groups++;
		if (groups > 8)
			return false;
		if (i == len)
			break;
		if (s[i] != ':')
			return false;
		i++;
		if (i < len && s[i] == ':') {
			if (compressed)
				return false;
			compressed = true;
			i++;
			if (i == len)
				break;
		} else if (i == len) {
			return false; /* trailing single ':' */
		}
	}
	return compressed ? groups <= 7 : groups == 8;
}

/* One sub-domain label: RFC 5321 Let-dig [Ldh-str], i.e. letters, digits and
 * hyphens, not starting or ending with a hyphen. With allow_utf8 (RFC 6531
 * U-label) a non-ASCII UTF-8 character counts as a letter; IDNA validity beyond
 * that is left to whoever converts it to an A-label. */
static bool label_valid(const char *s, size_t len, bool allow_utf8, bool *utf8_r)
{
	const unsigned char *p = (const unsigned char *)s;
	bool non_ascii = false;

	if (len == 0)
		return false;
	if (p[0] == '-' || p[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len;) {
		if (p[i] >= 0x80) {
			if (!allow_utf8)
				return false;
			size_t n = mail_utf8_seq_len(p + i, len - i);
			if (n == 0)
				return false;
			non_ascii = true;
			i += n;
			continue;
		}
		if (!is_alpha(p[i]) && !is_digit(p[i]) && p[i] != '-')
			return false;
		i++;
	}
	/* The octet limit is for the ASCII (A-label) form; a U-label may be longer in
	 * UTF-8 octets than its A-label, so only the total domain limit applies. */
	if (!non_ascii && len > DOMAIN_LABEL_MAX)
		return false;
	if (non_ascii)
		*utf8_r = true;
	return true;
}

static int domain_check(const char *s, size_t len, bool allow_utf8, bool *utf8_r)
{
	if (len == 0 || len > MAIL_DOMAIN_MAX)
		return -1;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (!label_valid(s + start, i - start, allow_utf8, utf8_r))
				return -1;
			start = i + 1;
		}
	}
	return 1;
}

int mail_domain_valid(const char *s, size_t len, bool allow_utf8)
{
	bool utf8 = false;
	return domain_check(s, len, allow_utf8, &utf8);
}

/* RFC 5321 4.1.3 address-literal, s points at '[' and len covers through ']'. */
static bool address_literal_valid(const char *s, size_t len)
{
	if (len < 3 || s[0] != '[' || s[len - 1] != ']')
		return false;
	const char *in = s + 1;
	size_t n = len - 2;

	if (n >= 5 && strncasecmp(in, "IPv6:", 5) == 0)
		return ipv6_valid(in + 5, n - 5);
	if (n > 0 && is_digit((unsigned char)in[0]))
		return ipv4_valid(in, n);
	/* General-address-literal = Standardized-tag ":" 1*dcontent, where the tag is
	 * an Ldh-str registered with IANA (none are besides IPv6). We accept the
	 * syntax; policy decides whether such a domain is ours (it never is). */
	size_t colon = 0;
	while (colon < n && in[colon] != ':')
		colon++;
	if (colon == 0 || colon == n || colon + 1 == n)
		return false;
	for (size_t i = 0; i < colon; i++) {
		unsigned char c = (unsigned char)in[i];
		if (!is_alpha(c) && !is_digit(c) && c != '-')
			return false;
	}
	if (in[colon - 1] == '-')
		return false;
	for (size_t i = colon + 1; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		/* dcontent = %d33-90 / %d94-126 */
		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

/* Scans a domain or address literal starting at s[0]; the domain ends at the
 * first byte that cannot belong to it (e.g. '>', ',', ':'). Returns its length,
 * or 0 if invalid. */
static size_t scan_domain(const char *s, size_t len, bool allow_utf8, bool *literal_r, bool *utf8_r,
                          const char **error_r)
{
	size_t i = 0;

	if (len > 0 && s[0] == '[') {
		while (i < len && s[i] != ']')
			i++;
		if (i == len) {
			*error_r = "unterminated address literal";
			return 0;
		}
		i++;
		if (i > MAIL_DOMAIN_MAX || !address_literal_valid(s, i)) {
			*error_r = "invalid address literal";
			return 0;
		}
		*literal_r = true;
		return i;
	}
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c >= 0x80)
			i++;
		else
			break;
	}
	if (i == 0) {
		*error_r = "missing domain";
		return 0;
	}
	if (i > MAIL_DOMAIN_MAX) {
		*error_r = "domain too long";
		return 0;
	}
	if (domain_check(s, i, allow_utf8, utf8_r) < 0) {
		*error_r = "invalid domain";
		return 0;
	}
	*literal_r = false;
	return i;
}

/* Scans a Local-part (Dot-string or Quoted-string) at s; the unquoted value is
 * written to out (room for len bytes). Returns the wire length, 0 if invalid. */
static size_t scan_local(const char *s, size_t len, bool allow_utf8, char *out, size_t *out_len_r,
                         bool *utf8_r, const char **error_r)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, o = 0;

	if (len > 0 && p[0] == '"') {
		/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE */
		i = 1;
		for (;;) {
			if (i >= len) {
				*error_r = "unterminated quoted string";
				return 0;
			}
			unsigned char c = p[i];
			if (c == '"') {
				i++;
				break;
			}
			if (c == '\\') {
				/* quoted-pairSMTP = %d92 %d32-126 */
				if (i + 1 >= len || p[i + 1] < 32 || p[i + 1] > 126) {
					*error_r = "invalid quoted pair";
					return 0;
				}
				out[o++] = (char)p[i + 1];
				i += 2;
			} else if (is_qtext(c)) {
				out[o++] = (char)c;
				i++;
			} else if (c >= 0x80 && allow_utf8) {
				size_t n = mail_utf8_seq_len(p + i, len - i);
				if (n == 0) {
					*error_r = "invalid UTF-8 in local part";
					return 0;
				}
				memcpy(out + o, p + i, n);
				o += n;
				i += n;
				*utf8_r = true;
			} else {
				*error_r = c >= 0x80 ? "non-ASCII local part needs SMTPUTF8"
				                     : "invalid character in local part";
				return 0;
			}
		}
	} else {
		/* Dot-string = Atom *("." Atom) */
		bool need_atext = true;
		while (i < len) {
			unsigned char c = p[i];
			if (is_atext(c)) {
				need_atext = false;
				i++;
			} else if (c >= 0x80) {
				if (!allow_utf8) {
					*error_r = "non-ASCII local part needs SMTPUTF8";
					return 0;
				}
				size_t n = mail_utf8_seq_len(p + i, len - i);
				if (n == 0) {
					*error_r = "invalid UTF-8 in local part";
					return 0;
				}
				i += n;
				need_atext = false;
				*utf8_r = true;
			} else if (c == '.') {
				if (need_atext) {
					*error_r = "invalid dot in local part";
					return 0;
				}
				need_atext = true;
				i++;
			} else {
				break;
			}
		}
		if (i == 0) {
			*error_r = "missing local part";
			return 0;
		}
		if (need_atext) {
			*error_r = "invalid dot in local part";
			return 0;
		}
		memcpy(out, s, i);
		o = i;
	}
	/* RFC 5321 4.5.3.1.1: 64 octets, counted as transmitted */
	if (i > MAIL_LOCALPART_MAX) {
		*error_r = "local part too long";
		return 0;
	}
	*out_len_r = o;
	return i;
}

/* Whether an unquoted local part can be written as a Dot-string. */
static bool local_is_dot_string(const char *s, size_t len)
{
	bool need_atext = true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (need_atext)
				return false;
			need_atext = true;
		} else if (is_atext(c) || c >= 0x80) {
			/* UTF-8 was validated while scanning */
			need_atext = false;
		} else {
			return false;
		}
	}
	return !need_atext;
}

static char *build_addr(const char *local, size_t local_len, const char *domain, size_t domain_len)
{
	bool quote = !local_is_dot_string(local, local_len);
	/* worst case: every byte escaped, plus quotes, '@' and NUL */
	size_t cap = local_len * 2 + domain_len + 4;
	char *a = malloc(cap);
	if (a == NULL)
		return NULL;
	size_t o = 0;
	if (quote)
		a[o++] = '"';
	for (size_t i = 0; i < local_len; i++) {
		if (quote && (local[i] == '"' || local[i] == '\\'))
			a[o++] = '\\';
		a[o++] = local[i];
	}
	if (quote)
		a[o++] = '"';
	a[o++] = '@';
	memcpy(a + o, domain, domain_len);
	o += domain_len;
	a[o] = '\0';
	return a;
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

/* Mailbox = Local-part "@" ( Domain / address-literal ). Parses at s and stops
 * after the domain; *consumed_r is its length. */
static int parse_mailbox(const char *s, size_t len, bool allow_utf8, struct mail_address *r,
                         size_t *consumed_r, const char **error_r)
{
	char local[MAIL_PATH_MAX + 1];
	size_t local_len = 0;
	bool utf8 = false, literal = false;
	/* The unquoted local part is never longer than its wire form, which lies
	 * within len; callers bound len by the path limit, and so does this clamp
	 * (longer input would be rejected as too long anyway). */
	if (len > MAIL_PATH_MAX + 1)
		len = MAIL_PATH_MAX + 1;
	size_t n = scan_local(s, len, allow_utf8, local, &local_len, &utf8, error_r);
	if (n == 0)
		return -1;
	if (n >= len || s[n] != '@') {
		*error_r = "missing @domain";
		return -1;
	}
	size_t d = scan_domain(s + n + 1, len - n - 1, allow_utf8, &literal, &utf8, error_r);
	if (d == 0)
		return -1;

	memset(r, 0, sizeof(*r));
	r->utf8 = utf8;
	r->domain_literal = literal;
	r->local = dup_n(local, local_len);
	r->domain = dup_n(s + n + 1, d);
	if (r->local == NULL || r->domain == NULL) {
		mail_address_free(r);
		*error_r = "out of memory";
		return -1;
	}
	if (!literal) {
		for (char *p = r->domain; *p != '\0'; p++) {
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		}
	}
	r->addr = build_addr(r->local, local_len, r->domain, d);
	if (r->addr == NULL) {
		mail_address_free(r);
		*error_r = "out of memory";
		return -1;
	}
	*consumed_r = n + 1 + d;
	return 1;
}

int mail_address_parse_path(const char *s, size_t len, bool allow_null, bool allow_utf8,
                            struct mail_address *r, size_t *consumed_r, const char **error_r)
{
	size_t i = 0;

	memset(r, 0, sizeof(*r));
	if (len == 0 || s[0] != '<') {
		*error_r = "path must be enclosed in <>";
		return -1;
	}
	/* Everything we look at lies within the path limit (RFC 5321 4.5.3.1.3: 256
	 * octets including punctuation), so bound the scan to it up front. */
	size_t lim = len < MAIL_PATH_MAX + 1 ? len : MAIL_PATH_MAX + 1;
	i = 1;
	if (i < lim && s[i] == '>') {
		if (!allow_null) {
			*error_r = "null path not allowed here";
			return -1;
		}
		r->null = true;
		r->addr = dup_n("", 0);
		if (r->addr == NULL) {
			*error_r = "out of memory";
			return -1;
		}
		*consumed_r = 2;
		return 1;
	}
	if (i < lim && s[i] == '@') {
		/* RFC 5321 4.1.2 A-d-l = At-domain *( "," At-domain ) ":" ; accepted and
		 * ignored (RFC 5321 3.3 and appendix C: source routes are obsolete). */
		for (;;) {
			if (i >= lim || s[i] != '@') {
				*error_r = "invalid source route";
				return -1;
			}
			i++;
			bool literal = false, utf8 = false;
			size_t d =
			    scan_domain(s + i, lim - i, allow_utf8, &literal, &utf8, error_r);
			if (d == 0)
				return -1;
			i += d;
			if (i < lim && s[i] == ',') {
				i++;
				continue;
			}
			if (i < lim && s[i] == ':') {
				i++;
				break;
			}
			*error_r = "invalid source route";
			return -1;
		}
	}
	size_t n;
	if (parse_mailbox(s + i, lim - i, allow_utf8, r, &n, error_r) < 0) {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	i += n;
	if (i >= lim || s[i] != '>') {
		mail_address_free(r);
		*error_r = i >= MAIL_PATH_MAX ? "path too long" : "invalid character after address";
		return -1;
	}
	i++;
	if (i > MAIL_PATH_MAX) {
		mail_address_free(r);
		*error_r = "path too long";
		return -1;
	}
	*consumed_r = i;
	return 1;
}

int mail_address_parse(const char *s, size_t len, bool allow_utf8, struct mail_address *r,
                       const char **error_r)
{
	size_t n;

	memset(r, 0, sizeof(*r));
	/* the same limit as the path it would travel in, minus the brackets */
	if (len > MAIL_PATH_MAX - 2) {
		*error_r = "address too long";
		return -1;
	}
	if (parse_mailbox(s, len, allow_utf8, r, &n, error_r) < 0) {
		memset(r, 0, sizeof(*r));
		return -1;
	}
	if (n != len) {
		mail_address_free(r);
		*error_r = "invalid character after address";
		return -1;
	}
	return 1;
}

void mail_address_free(struct mail_address *r)
{
	if (r == NULL)
		return;
	free(r->local);
	free(r->domain);
	free(r->addr);
	memset(r, 0, sizeof(*r));
}
