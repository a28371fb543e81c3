/* Mail addresses as SMTP paths (RFC 5321 4.1.2, RFC 6531 for UTF-8). */
#ifndef HERMOD_MAIL_ADDRESS_H
#define HERMOD_MAIL_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1: local-part 64, domain 255, path 256 octets. */
#define MAIL_LOCALPART_MAX 64
#define MAIL_DOMAIN_MAX 255
#define MAIL_PATH_MAX 256

struct mail_address {
	bool null;    /* the null path "<>" */
	bool utf8;    /* contains non-ASCII (needs SMTPUTF8) */
	char *local;  /* unquoted local part (quoted-pair escapes removed), malloc'd */
	char *domain; /* domain lower-cased (ASCII), or address literal "[1.2.3.4]" as given */
	bool domain_literal;
	char *addr;   /* "local@domain", local re-quoted if it needs quoting; "" for null; malloc'd */
};
/* Notes for users of the result:
 * - local is the unquoted local part and may contain '@', '%', '!', '"' or spaces
 *   (from a Quoted-string, e.g. <"a@b"@example.test>). Decide routing and relaying
 *   on the domain field only; never split addr at an '@'.
 * - Limits are counted on the wire form: local part as transmitted (quotes and
 *   escapes included) <= 64, domain <= 255, whole path incl. "<", ">" and any
 *   source route <= 256. Domain labels <= 63 octets (RFC 1035) unless they are
 *   U-labels. An empty quoted local part <""@d> is grammatical and accepted.
 * - IPv6 literals follow RFC 4291 text form ("::" may stand for one group).
 *   General-address-literals "[tag:content]" are accepted syntactically.
 * - UTF-8 (allow_utf8) must be well-formed, with no overlongs, surrogates or C1
 *   controls; no NUL or control character is accepted anywhere.
 * - On failure *r is zeroed (mail_address_free on it is a no-op). */

/* Parses a path "<...>" at the start of s (len bytes). *consumed_r = bytes up to and
 * including '>'. allow_null: "<>" accepted (reverse-path). allow_utf8: RFC 6531
 * UTF-8 in local part and domain (must be valid UTF-8). Returns 1 ok, -1 bad with
 * *error_r a static string. On ok, free with mail_address_free. */
int mail_address_parse_path(const char *s, size_t len, bool allow_null, bool allow_utf8,
			    struct mail_address *r, size_t *consumed_r, const char **error_r);
/* Parses a bare "local@domain" (no brackets), e.g. from the CLI. Same rules. */
int mail_address_parse(const char *s, size_t len, bool allow_utf8, struct mail_address *r,
		       const char **error_r);
void mail_address_free(struct mail_address *r);

/* Checks an RFC 5321 Domain (dot-separated sub-domains: let-dig [ldh-str]) or
 * with allow_utf8 a U-label domain. 1 ok, -1 bad. */
int mail_domain_valid(const char *s, size_t len, bool allow_utf8);

/* Length of one well-formed UTF-8 sequence (RFC 3629 4) at s, whose first byte is
 * >= 0x80, or 0 when it is not valid UTF-8. Overlong forms, surrogates, code points
 * above U+10FFFF and C1 controls (U+0080..U+009F) are rejected. */
size_t mail_utf8_seq_len(const unsigned char *s, size_t len);

#endif
