/* Pure pieces of outbound routing and retry timing (docs/delivery.md), apart
 * from the runner so that they are unit-tested without a network. */
#ifndef HERMOD_DELIVERY_ROUTE_H
#define HERMOD_DELIVERY_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

/* Orders mx[0..n) for trying (RFC 5321 5.1): lowest preference first, equal
 * preferences in random order (rnd() gives the randomness: tests pass a fixed
 * sequence). Returns the number of usable hosts left at the front of mx, or -1
 * for a null MX (RFC 7505: a single record with host "."; a "." among others is
 * dropped as unusable). */
long route_mx_order(struct dns_mx *mx, size_t n, uint32_t (*rnd)(void *ctx), void *ctx);

/* The domain of an address (after its last '@'), or "" when there is none. */
const char *route_domain(const char *addr);

/* A domain literal "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3): 1
 * with the address in *family_r (AF_INET/AF_INET6) and addr_r (16 octets), 0
 * not a literal, -1 a malformed one. */
int route_domain_literal(const char *domain, int *family_r, unsigned char addr_r[16]);

/* When the next attempt is due after attempt number attempts (1 = the first one
 * just failed): now + sched[min(attempts, n) - 1], the last wait repeating. */
int64_t route_next_attempt(int64_t now, unsigned attempts, const unsigned *sched, size_t n);

/* Whether a message queued at created has been retried for expiry seconds. */
bool route_expired(int64_t now, int64_t created, unsigned expiry);

#endif
