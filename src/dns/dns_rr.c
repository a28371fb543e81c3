/* Record data of the types hermod asks for, from wire format (RFC 1035 3.3,
 * 3.4; RFC 3596 2.2; RFC 6698 2.1), and the name helpers of dns.h. The data
 * comes from the network through libunbound: every length is checked. */
#include "dns/dns.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 1035 2.3.4 */
#define DNS_LABEL_MAX 63
#define DNS_WIRE_NAME_MAX 255

static const struct {
	enum dns_type type;
	const char *name;
} dns_types[] = {
    {DNS_TYPE_A, "A"},     {DNS_TYPE_PTR, "PTR"},   {DNS_TYPE_MX, "MX"},
    {DNS_TYPE_TXT, "TXT"}, {DNS_TYPE_AAAA, "AAAA"}, {DNS_TYPE_TLSA, "TLSA"},
};

const char *dns_type_name(enum dns_type type)
{
	for (size_t i = 0; i < sizeof(dns_types) / sizeof(dns_types[0]); i++)
		if (dns_types[i].type == type)
			return dns_types[i].name;
	return "?";
}

enum dns_type dns_type_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(dns_types) / sizeof(dns_types[0]); i++)
		if (strcasecmp(dns_types[i].name, name) == 0)
			return dns_types[i].type;
	return 0;
}

const char *dns_status_name(enum dns_status status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_NODATA:
		return "nodata";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

const char *dns_security_name(enum dns_security security)
{
	switch (security) {
	case DNS_INSECURE:
		return "insecure";
	case DNS_SECURE:
		return "secure";
	case DNS_BOGUS:
		return "bogus";
	}
	return "?";
}

int dns_name_check(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--; /* the root's empty label */
	if (len == 0)
		return name[0] == '.' ? 1 : 0; /* "." is the root */
	if (len > DNS_WIRE_NAME_MAX - 2)
		return 0; /* 253 octets of text are 255 on the wire */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		/* a name to look up is text: no controls, no blanks, no escapes */
		if (c <= ' ' || c == 0x7f || c == '\\')
			return 0;
		if (++label > DNS_LABEL_MAX)
			return 0;
	}
	return 1;
}

int dns_ptr_name(int family, const void *addr, char *out, size_t outlen)
{
	size_t o = 0;
	int n;

	if (family == AF_INET) {
		const uint8_t *b = addr;
		n = snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
		return n > 0 && (size_t)n < outlen ? 1 : -1;
	}
	if (family != AF_INET6 || outlen < 16 * 4 + sizeof("ip6.arpa"))
		return -1;
	const uint8_t *b = addr;
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		out[o++] = hex[b[i] & 0x0f];
		out[o++] = '.';
		out[o++] = hex[b[i] >> 4];
		out[o++] = '.';
	}
	memcpy(out + o, "ip6.arpa", sizeof("ip6.arpa"));
	return 1;
}

/* A name in uncompressed wire form at p[0..len) to presentation form in out
 * (DNS_NAME_MAX + 1), with \DDD for octets outside letters, digits, '-' and '_'
 * and "\." for a dot inside a label; the root is ".". Returns the octets read,
 * -1 when malformed (a compression pointer included: record data handed out
 * by the resolver is uncompressed). */
static int dns_wire_name(const uint8_t *p, size_t len, char *out)
{
	size_t i = 0, o = 0;

	for (;;) {
		if (i >= len)
			return -1;
		size_t l = p[i++];
		if (l == 0)
			break;
		if (l > DNS_LABEL_MAX || l > len - i || i + l >= DNS_WIRE_NAME_MAX)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t k = 0; k < l; k++) {
			unsigned char c = p[i + k];
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '_') {
				out[o++] = (char)c;
			} else if (c == '.') {
				out[o++] = '\\';
				out[o++] = '.';
			} else {
				o += (size_t)snprintf(out + o, 5, "\\%03u", c);
			}
		}
		i += l;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return (int)i;
}

static int dns_parse_one(struct dns_answer *a, enum dns_type type, size_t k, const uint8_t *p,
                         size_t len)
{
	int used;

	switch (type) {
	case DNS_TYPE_A:
		if (len != 4)
			return -1;
		memcpy(&a->a[k], p, 4);
		return 1;
	case DNS_TYPE_AAAA:
		if (len != 16)
			return -1;
		memcpy(&a->aaaa[k], p, 16);
		return 1;
	case DNS_TYPE_MX:
		if (len < 3)
			return -1;
		a->mx[k].preference = (uint16_t)(p[0] << 8 | p[1]);
		used = dns_wire_name(p + 2, len - 2, a->mx[k].host);
		return used > 0 && (size_t)used == len - 2 ? 1 : -1;
	case DNS_TYPE_PTR:
		used = dns_wire_name(p, len, a->ptr[k].name);
		return used > 0 && (size_t)used == len ? 1 : -1;
	case DNS_TYPE_TXT: {
		/* RFC 1035 3.3.14: one or more <character-string>s */
		if (len == 0)
			return -1;
		char *d = malloc(len + 1);
		size_t o = 0;
		if (d == NULL)
			return -1;
		for (size_t i = 0; i < len;) {
			size_t l = p[i++];
			if (l > len - i) {
				free(d);
				return -1;
			}
			memcpy(d + o, p + i, l);
			o += l;
			i += l;
		}
		d[o] = '\0';
		a->txt[k].data = d;
		a->txt[k].len = o;
		return 1;
	}
	case DNS_TYPE_TLSA:
		if (len < 4)
			return -1;
		a->tlsa[k].usage = p[0];
		a->tlsa[k].selector = p[1];
		a->tlsa[k].mtype = p[2];
		a->tlsa[k].len = len - 3;
		a->tlsa[k].data = malloc(len - 3);
		if (a->tlsa[k].data == NULL)
			return -1;
		memcpy(a->tlsa[k].data, p + 3, len - 3);
		return 1;
	}
	return -1;
}

int dns_answer_parse(struct dns_answer *a, enum dns_type type, char *const *rdata, const int *len,
                     size_t n)
{
	size_t size;
	void **arr;

	a->n = 0;
	switch (type) {
	case DNS_TYPE_A:
		size = sizeof(*a->a), arr = (void **)&a->a;
		break;
	case DNS_TYPE_AAAA:
		size = sizeof(*a->aaaa), arr = (void **)&a->aaaa;
		break;
	case DNS_TYPE_MX:
		size = sizeof(*a->mx), arr = (void **)&a->mx;
		break;
	case DNS_TYPE_PTR:
		size = sizeof(*a->ptr), arr = (void **)&a->ptr;
		break;
	case DNS_TYPE_TXT:
		size = sizeof(*a->txt), arr = (void **)&a->txt;
		break;
	case DNS_TYPE_TLSA:
		size = sizeof(*a->tlsa), arr = (void **)&a->tlsa;
		break;
	default:
		return -1;
	}
	if (n == 0)
		return 1;
	/* a DNS message is at most 64 KiB: n is bounded by the resolver */
	*arr = calloc(n, size);
	if (*arr == NULL)
		return -1;
	for (size_t k = 0; k < n; k++) {
		if (len[k] < 0 ||
		    dns_parse_one(a, type, k, (const uint8_t *)rdata[k], (size_t)len[k]) < 0) {
			a->n = k; /* what was parsed is freed */
			dns_answer_clear(a);
			return -1;
		}
	}
	a->n = n;
	return 1;
}

void dns_answer_clear(struct dns_answer *a)
{
	if (a->txt != NULL)
		for (size_t k = 0; k < a->n; k++)
			free(a->txt[k].data);
	if (a->tlsa != NULL)
		for (size_t k = 0; k < a->n; k++)
			free(a->tlsa[k].data);
	free(a->a);
	free(a->aaaa);
	free(a->mx);
	free(a->txt);
	free(a->ptr);
	free(a->tlsa);
	a->a = NULL;
	a->aaaa = NULL;
	a->mx = NULL;
	a->txt = NULL;
	a->ptr = NULL;
	a->tlsa = NULL;
	a->n = 0;
}
