#include "delivery/srs.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/base64.h"

/* RFC 4648 base32 for the 2-character day stamp (10 bits: days mod 1024) */
static const char srs_b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static int srs_b32_value(char c)
{
	const char *p = strchr(srs_b32, toupper((unsigned char)c));
	return c != '\0' && p != NULL ? (int)(p - srs_b32) : -1;
}

/* The first 4 characters of base64(HMAC-SHA1(secret, lower(stamp=domain=local))). */
static int srs_hash(const char *secret, const char *stamp, const char *domain, const char *local,
                    size_t local_len, char out[5])
{
	char data[SRS_ADDR_MAX * 2];
	int n = snprintf(data, sizeof(data), "%s=%s=%.*s", stamp, domain, (int)local_len, local);
	if (n < 0 || (size_t)n >= sizeof(data))
		return -1;
	for (int i = 0; i < n; i++)
		data[i] = (char)tolower((unsigned char)data[i]);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	if (HMAC(EVP_sha1(), secret, (int)strlen(secret), (unsigned char *)data, (size_t)n, mac,
	         &maclen) == NULL)
		return -1;
	char b64[64];
	base64_encode_buf(mac, maclen, b64);
	memcpy(out, b64, 4);
	out[4] = '\0';
	return 1;
}

static void srs_stamp(int64_t now, char out[3])
{
	unsigned days = (unsigned)((now / 86400) % 1024);
	out[0] = srs_b32[(days >> 5) & 31];
	out[1] = srs_b32[days & 31];
	out[2] = '\0';
}

int srs_forward(const char *secret, const char *sender, const char *our_domain, int64_t now,
                char *out, size_t outlen)
{
	const char *at = strrchr(sender, '@');
	char stamp[3], hash[5];

	if (at == NULL || at == sender || at[1] == '\0')
		return -1;
	/* the scheme's '=' separators: a domain cannot hold one (no valid one does) */
	if (strchr(at + 1, '=') != NULL)
		return -1;
	srs_stamp(now, stamp);
	if (srs_hash(secret, stamp, at + 1, sender, (size_t)(at - sender), hash) < 0)
		return -1;
	int n = snprintf(out, outlen, "SRS0=%s=%s=%s=%.*s@%s", hash, stamp, at + 1,
	                 (int)(at - sender), sender, our_domain);
	return n < 0 || (size_t)n >= outlen || (size_t)n > SRS_ADDR_MAX ? -1 : 1;
}

int srs_reverse(const char *secret, const char *addr, int64_t now, char *out, size_t outlen)
{
	if (strncasecmp(addr, "SRS0=", 5) != 0)
		return 0;
	const char *at = strrchr(addr, '@');
	if (at == NULL)
		return -1;
	/* SRS0=HHHH=TT=domain=local@ours; local may hold '=' itself */
	const char *h = addr + 5;
	const char *e1 = strchr(h, '=');
	if (e1 == NULL || e1 > at || e1 - h != 4)
		return -1;
	const char *t = e1 + 1;
	const char *e2 = strchr(t, '=');
	if (e2 == NULL || e2 > at || e2 - t != 2)
		return -1;
	const char *d = e2 + 1;
	const char *e3 = strchr(d, '=');
	if (e3 == NULL || e3 > at || e3 == d)
		return -1;
	const char *l = e3 + 1;
	if (l >= at)
		return -1;
	char stamp[3] = {t[0], t[1], '\0'}, domain[SRS_ADDR_MAX], hash[5];
	int v0 = srs_b32_value(t[0]), v1 = srs_b32_value(t[1]);
	if (v0 < 0 || v1 < 0 || (size_t)(e3 - d) >= sizeof(domain))
		return -1;
	/* days since the stamp, modulo the stamp's 1024-day cycle */
	unsigned then = (unsigned)(v0 << 5 | v1), today = (unsigned)((now / 86400) % 1024);
	if ((today + 1024 - then) % 1024 > SRS_MAX_AGE_DAYS)
		return -1;
	memcpy(domain, d, (size_t)(e3 - d));
	domain[e3 - d] = '\0';
	/* the stamp is hashed as we made it: upper case */
	stamp[0] = srs_b32[v0];
	stamp[1] = srs_b32[v1];
	if (srs_hash(secret, stamp, domain, l, (size_t)(at - l), hash) < 0)
		return -1;
	/* base64 is case-sensitive, but addresses may lose their case on the way:
	 * compare without it (the hash keeps 4 x 5 bits of strength then) */
	if (strncasecmp(hash, h, 4) != 0)
		return -1;
	int n = snprintf(out, outlen, "%.*s@%s", (int)(at - l), l, domain);
	return n < 0 || (size_t)n >= outlen ? -1 : 1;
}
