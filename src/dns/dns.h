/* Asynchronous DNS lookups on libunbound (docs/dns.md).
 *
 * A resolver belongs to one event loop: its libunbound context resolves in a
 * thread of its own and hands answers back through a file descriptor that the
 * loop watches, so no lookup blocks a loop. Callbacks run on that loop. Each
 * answer carries the DNSSEC state of the data (secure, insecure, bogus) as the
 * validator saw it; libunbound's cache (small, TTLs respected) sits inside the
 * context. SPF, DKIM, DMARC, MX routing, MTA-STS and DANE all ask through this
 * interface. */
#ifndef HERMOD_DNS_DNS_H
#define HERMOD_DNS_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns_resolver;
struct dns_query;

/* A domain name in presentation form, without the trailing dot: at most 253
 * octets of labels (RFC 1035 2.3.4), more when \DDD escapes are needed. */
#define DNS_NAME_MAX 1009

/* Record types (RFC 1035, 3596, 6698), by their numbers on the wire. */
enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_PTR = 12,
	DNS_TYPE_MX = 15,
	DNS_TYPE_TXT = 16,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_TLSA = 52,
};

enum dns_status {
	DNS_OK,       /* records of the type were found (n > 0) */
	DNS_NODATA,   /* the name exists but has no records of the type */
	DNS_NXDOMAIN, /* the name does not exist */
	/* no usable answer now: SERVFAIL (a bogus answer too: see security),
	 * REFUSED, a timeout, no server reachable, a malformed answer. Worth
	 * trying again later. */
	DNS_TEMPFAIL,
};

enum dns_security {
	DNS_INSECURE, /* not validated: validation off, or an unsigned zone */
	DNS_SECURE,   /* validated from a trust anchor (DNSSEC) */
	DNS_BOGUS,    /* validation failed: the data must not be used */
};

struct dns_mx {
	uint16_t preference;
	char host[DNS_NAME_MAX + 1]; /* "." for a null MX (RFC 7505) */
};

struct dns_txt {
	/* the record's character-strings joined without separator (RFC 7208
	 * 3.3, RFC 6376 3.6.2.2), NUL-terminated; may hold NULs: len counts */
	char *data;
	size_t len;
};

struct dns_tlsa {
	uint8_t usage, selector, mtype; /* RFC 6698 2.1 */
	uint8_t *data;                  /* certificate association data */
	size_t len;
};

struct dns_name {
	char name[DNS_NAME_MAX + 1];
};

/* One answer. Arrays hold n records of the asked type in the order of the
 * answer; only the array of that type is set. */
struct dns_answer {
	enum dns_type type;
	enum dns_status status;
	enum dns_security security;
	int rcode;       /* DNS RCODE of the answer (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN) */
	uint32_t ttl;    /* seconds the answer may be kept */
	const char *why; /* DNS_TEMPFAIL / DNS_BOGUS: a short reason; else NULL */
	size_t n;
	struct in_addr *a;
	struct in6_addr *aaaa;
	struct dns_mx *mx;
	struct dns_txt *txt;
	struct dns_name *ptr;
	struct dns_tlsa *tlsa;
};

struct dns_options {
	/* "IP:port" / "[IPv6]:port": forward every query to that server;
	 * "recursive": resolve from the root servers; NULL: forward to the
	 * nameservers of /etc/resolv.conf (or resolve recursively when it lists
	 * none) */
	const char *resolver;
	/* A file of DS or DNSKEY records (like Debian's /usr/share/dns/root.key)
	 * that turns DNSSEC validation on. NULL: validation is on only when
	 * resolving recursively, from DNS_ROOT_KEY; a forwarder that does not pass
	 * DNSSEC records on would make every validated answer bogus. */
	const char *trust_anchor;
	const char *resolv_conf; /* NULL: /etc/resolv.conf */
	unsigned timeout;        /* seconds a lookup may take, 0: DNS_TIMEOUT_DEFAULT */
};

#define DNS_ROOT_KEY "/usr/share/dns/root.key"
#define DNS_TIMEOUT_DEFAULT 30

/* A resolver on base. 1 ok; -1 with *error_r (malloc'd) when the options do not
 * work (bad address, unreadable trust anchor, no thread). */
int dns_resolver_new(struct event_base *base, const struct dns_options *opts,
                     struct dns_resolver **r_r, char **error_r);
/* Cancels every pending lookup (their callbacks are not called) and frees. */
void dns_resolver_free(struct dns_resolver **r);
/* Whether answers are validated (a trust anchor is in use). */
bool dns_resolver_validating(const struct dns_resolver *r);

/* The answer, on the resolver's loop; a is valid during the call only. */
typedef void dns_cb(void *ctx, const struct dns_answer *a);

/* Looks name up (presentation form, trailing dot optional). cb is called exactly
 * once, later (never from inside this call), unless the lookup is cancelled.
 * 1 ok, with *q_r (may be NULL) for dns_cancel; -1 with *error_r (malloc'd)
 * when name is not a valid domain name (empty label, label over 63 octets, over
 * 253 octets) or the lookup cannot start. */
int dns_lookup(struct dns_resolver *r, const char *name, enum dns_type type, dns_cb *cb, void *ctx,
               struct dns_query **q_r, char **error_r);
/* Cancels a pending lookup: its callback will not be called. NULL ok; sets *q
 * to NULL. Not to be called for a lookup whose callback has started. */
void dns_cancel(struct dns_query **q);

/* ---- helpers, no I/O ---- */

/* 1 when name is a syntactically valid domain name (as dns_lookup checks). */
int dns_name_check(const char *name);
/* The reverse-lookup name of an address (RFC 1035 3.5, RFC 3596 2.5):
 * "4.3.2.1.in-addr.arpa", or the 32 nibbles under "ip6.arpa". family AF_INET
 * (addr is a struct in_addr) or AF_INET6. 1 ok, -1 when out is too small
 * (73 octets are enough). */
int dns_ptr_name(int family, const void *addr, char *out, size_t outlen);
/* Parses the records rdata[0..n) (wire format, as in a DNS message without
 * name compression, lengths len[i]) of the given type into a's array for that
 * type and sets a->n. 1 ok; -1 when a record is malformed (nothing kept) or
 * memory runs out. */
int dns_answer_parse(struct dns_answer *a, enum dns_type type, char *const *rdata, const int *len,
                     size_t n);
/* Frees what dns_answer_parse allocated (not a itself) and zeroes the arrays. */
void dns_answer_clear(struct dns_answer *a);
const char *dns_type_name(enum dns_type type);
/* The type of a name such as "MX" or "tlsa"; 0 when unknown. */
enum dns_type dns_type_from_name(const char *name);
const char *dns_status_name(enum dns_status status);
const char *dns_security_name(enum dns_security security);

#endif
