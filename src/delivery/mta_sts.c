/* MTA-STS, the pure part: the TXT record, the policy file, mx patterns
 * (see mta_sts.h). No I/O, no allocation. */
#include "delivery/mta_sts.h"

#include <string.h>
#include <strings.h>

#include "dns/dns.h"

static bool sts_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool sts_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static int sts_fail(const char **error_r, const char *why)
{
	if (error_r != NULL)
		*error_r = why;
	return -1;
}

/* An extension name, RFC 8461 3.1 and 3.2: (ALPHA / DIGIT) *31(ALPHA / DIGIT /
 * "_" / "-" / "."). The length of the name at s[0..len), 0 when none. */
static size_t sts_ext_name(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0 || !sts_alnum((unsigned char)s[0]))
		return 0;
	for (i = 1; i < len && i < 32; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!sts_alnum(c) && c != '_' && c != '-' && c != '.')
			break;
	}
	return i;
}

/* ---- the TXT record (RFC 8461 3.1) ---- */

#define STS_TXT_VERSION "v=STSv1"

int mta_sts_txt_parse(const char *data, size_t len, char id_r[MTA_STS_ID_MAX + 1],
                      const char **error_r)
{
	const size_t vlen = sizeof(STS_TXT_VERSION) - 1;
	bool have_id = false;
	size_t p;

	id_r[0] = '\0';
	/* sts-version = %s"v=STSv1": case-sensitive, and the record's first
	 * field; "v=STSv10" is some other record */
	if (len < vlen || memcmp(data, STS_TXT_VERSION, vlen) != 0)
		return 0;
	if (len > vlen && data[vlen] != ';' && !sts_wsp((unsigned char)data[vlen]))
		return 0;
	if (len > MTA_STS_TXT_MAX)
		return sts_fail(error_r, "TXT record too long");
	p = vlen;
	for (;;) {
		/* sts-field-delim = *WSP ";" *WSP; a last delimiter is optional */
		while (p < len && sts_wsp((unsigned char)data[p]))
			p++;
		if (p == len)
			break;
		if (data[p] != ';')
			return sts_fail(error_r, "TXT record: ';' expected");
		p++;
		while (p < len && sts_wsp((unsigned char)data[p]))
			p++;
		if (p == len)
			break;
		size_t n = sts_ext_name(data + p, len - p);
		if (n == 0 || p + n >= len || data[p + n] != '=')
			return sts_fail(error_r, "TXT record: bad field");
		bool is_id = n == 2 && memcmp(data + p, "id", 2) == 0;
		p += n + 1;
		size_t v = p;
		if (is_id) {
			/* sts-id = %s"id=" 1*32(ALPHA / DIGIT) */
			while (p < len && sts_alnum((unsigned char)data[p]))
				p++;
			if (p == v || p - v > MTA_STS_ID_MAX)
				return sts_fail(error_r, "TXT record: bad id");
			if (have_id)
				return sts_fail(error_r, "TXT record: several ids");
			memcpy(id_r, data + v, p - v);
			id_r[p - v] = '\0';
			have_id = true;
		} else {
			/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E): ignored */
			while (p < len) {
				unsigned char c = (unsigned char)data[p];
				if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
					break;
				p++;
			}
			if (p == v)
				return sts_fail(error_r, "TXT record: bad field");
		}
		if (p < len && data[p] != ';' && !sts_wsp((unsigned char)data[p]))
			return sts_fail(error_r, "TXT record: bad field");
	}
	if (!have_id) {
		id_r[0] = '\0';
		return sts_fail(error_r, "TXT record: no id");
	}
	return 1;
}

int mta_sts_txt_select(const struct dns_txt *txt, size_t n, char id_r[MTA_STS_ID_MAX + 1],
                       const char **error_r)
{
	char id[MTA_STS_ID_MAX + 1];
	const char *why = NULL;
	size_t found = 0;
	int rc = 0;

	id_r[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		int r = mta_sts_txt_parse(txt[i].data, txt[i].len, id, &why);
		if (r == 0)
			continue;
		found++;
		rc = r;
		if (r > 0)
			memcpy(id_r, id, sizeof(id));
	}
	if (found == 0)
		return 0;
	if (found > 1) {
		id_r[0] = '\0';
		return sts_fail(error_r, "several STSv1 TXT records");
	}
	if (rc < 0)
		return sts_fail(error_r, why);
	return 1;
}

/* ---- the policy file (RFC 8461 3.2) ---- */

/* ["*."] Domain (RFC 5321 4.1.2: labels of letters, digits and inner
 * hyphens), one trailing dot tolerated, into out (lower-case, no dot).
 * 1 ok, -1 invalid. */
static int sts_pattern_parse(const char *v, size_t len, char out[MTA_STS_NAME_MAX + 1])
{
	size_t i = 0, label = 0;

	if (len > 0 && v[len - 1] == '.')
		len--;
	if (len == 0 || len > MTA_STS_NAME_MAX)
		return -1;
	if (len >= 2 && v[0] == '*' && v[1] == '.')
		i = 2;
	if (i == len)
		return -1;
	for (size_t k = 0; k < i; k++)
		out[k] = v[k];
	for (; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '.') {
			if (label == 0 || v[i - 1] == '-')
				return -1;
			label = 0;
		} else if (sts_alnum(c) || c == '-') {
			if (c == '-' && label == 0)
				return -1;
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	if (label == 0 || v[len - 1] == '-')
		return -1;
	out[len] = '\0';
	return 1;
}

/* max_age = 1*10DIGIT, at most MTA_STS_MAX_AGE_MAX. 1 ok, -1. */
static int sts_max_age_parse(const char *v, size_t len, uint32_t *r)
{
	uint64_t n = 0;

	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0'); /* 10 digits fit in 64 bits */
	}
	if (n > MTA_STS_MAX_AGE_MAX)
		return -1;
	*r = (uint32_t)n;
	return 1;
}

static bool sts_key_is(const char *k, size_t klen, const char *name)
{
	return klen == strlen(name) && memcmp(k, name, klen) == 0;
}

/* One "key: value" line (no line end). 1 ok, -1. */
static int sts_policy_line(const char *s, size_t len, struct mta_sts_policy *pol,
                           bool *seen_version, bool *seen_mode, bool *seen_max_age,
                           const char **error_r)
{
	size_t k = sts_ext_name(s, len);

	if (k == 0 || k >= len || s[k] != ':')
		return sts_fail(error_r,
		                k == 0 ? "policy: bad field name" : "policy: ':' expected");
	const char *v = s + k + 1;
	size_t vlen = len - k - 1;
	/* field-delim = ":" *WSP; *WSP after the value */
	while (vlen > 0 && sts_wsp((unsigned char)v[0])) {
		v++;
		vlen--;
	}
	while (vlen > 0 && sts_wsp((unsigned char)v[vlen - 1]))
		vlen--;
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)v[i];
		/* sts-policy-vchar and %x20; octets >= 0x80 only in extension values
		 * (UTF-8 there, not checked further: they are ignored) */
		if (c < 0x20 ? c != '\t' : c == 0x7f)
			return sts_fail(error_r, "policy: control character");
	}
	if (sts_key_is(s, k, "version")) {
		/* the first occurrence of a field counts */
		if (*seen_version)
			return 1;
		if (!(vlen == 5 && memcmp(v, "STSv1", 5) == 0))
			return sts_fail(error_r, "policy: unsupported version");
		*seen_version = true;
	} else if (sts_key_is(s, k, "mode")) {
		if (*seen_mode)
			return 1;
		if (vlen == 7 && memcmp(v, "enforce", 7) == 0)
			pol->mode = MTA_STS_MODE_ENFORCE;
		else if (vlen == 7 && memcmp(v, "testing", 7) == 0)
			pol->mode = MTA_STS_MODE_TESTING;
		else if (vlen == 4 && memcmp(v, "none", 4) == 0)
			pol->mode = MTA_STS_MODE_NONE;
		else
			return sts_fail(error_r, "policy: bad mode");
		*seen_mode = true;
	} else if (sts_key_is(s, k, "max_age")) {
		if (*seen_max_age)
			return 1;
		if (sts_max_age_parse(v, vlen, &pol->max_age) < 0)
			return sts_fail(error_r, "policy: bad max_age");
		*seen_max_age = true;
	} else if (sts_key_is(s, k, "mx")) {
		if (pol->nmx == MTA_STS_MX_MAX)
			return sts_fail(error_r, "policy: too many mx");
		if (sts_pattern_parse(v, vlen, pol->mx[pol->nmx]) < 0)
			return sts_fail(error_r, "policy: bad mx pattern");
		pol->nmx++;
	}
	/* RFC 8461 3.2: unknown fields are ignored */
	return 1;
}

int mta_sts_policy_parse(const char *body, size_t len, struct mta_sts_policy *pol,
                         const char **error_r)
{
	bool seen_version = false, seen_mode = false, seen_max_age = false;
	size_t p = 0;

	memset(pol, 0, sizeof(*pol));
	if (len > MTA_STS_BODY_MAX)
		return sts_fail(error_r, "policy: over 65536 octets");
	while (p < len) {
		size_t e = p;
		while (e < len && body[e] != '\n')
			e++;
		size_t end = e;
		/* sts-policy-term = LF / CRLF */
		if (end > p && body[end - 1] == '\r')
			end--;
		for (size_t i = p; i < end; i++) {
			if (body[i] == '\r')
				return sts_fail(error_r, "policy: bare CR");
			if (body[i] == '\0')
				return sts_fail(error_r, "policy: NUL");
		}
		if (end > p && sts_policy_line(body + p, end - p, pol, &seen_version, &seen_mode,
		                               &seen_max_age, error_r) < 0) {
			memset(pol, 0, sizeof(*pol));
			return -1;
		}
		p = e < len ? e + 1 : e;
	}
	const char *why = !seen_version                                     ? "policy: no version"
	                  : !seen_mode                                      ? "policy: no mode"
	                  : !seen_max_age                                   ? "policy: no max_age"
	                  : pol->nmx == 0 && pol->mode != MTA_STS_MODE_NONE ? "policy: no mx"
	                                                                    : NULL;
	if (why != NULL) {
		memset(pol, 0, sizeof(*pol));
		return sts_fail(error_r, why);
	}
	return 1;
}

/* ---- mx patterns (RFC 8461 4.1) ---- */

bool mta_sts_pattern_match(const char *pattern, const char *host)
{
	size_t hlen = strlen(host), plen = strlen(pattern);

	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (hlen == 0 || plen == 0)
		return false;
	if (plen >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		/* "*.example.com" = exactly one label before ".example.com" */
		const char *suffix = pattern + 1;
		size_t slen = plen - 1;
		if (hlen <= slen || strncasecmp(host + hlen - slen, suffix, slen) != 0)
			return false;
		return memchr(host, '.', hlen - slen) == NULL;
	}
	return hlen == plen && strncasecmp(host, pattern, plen) == 0;
}

bool mta_sts_mx_match(const struct mta_sts_policy *pol, const char *mx_host)
{
	for (size_t i = 0; i < pol->nmx; i++) {
		if (mta_sts_pattern_match(pol->mx[i], mx_host))
			return true;
	}
	return false;
}

const char *mta_sts_mode_name(enum mta_sts_mode mode)
{
	switch (mode) {
	case MTA_STS_MODE_ENFORCE:
		return "enforce";
	case MTA_STS_MODE_TESTING:
		return "testing";
	case MTA_STS_MODE_NONE:
		return "none";
	}
	return "?";
}
