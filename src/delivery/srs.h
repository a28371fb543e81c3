/* The Sender Rewriting Scheme for forwarded mail (docs/delivery.md): when hermod
 * forwards a message from sender@other.example to a remote address, the
 * envelope sender becomes SRS0=HHHH=TT=other.example=sender@<our domain>, an
 * address of ours (so the forward passes SPF at the next hop) that routes a
 * bounce back to the original sender. HHHH is an HMAC-SHA1 (keyed with
 * [delivery] srs_secret) of the rest, TT the day it was made: a bounce to such
 * an address is accepted only with a valid hash within SRS_MAX_AGE_DAYS. Pure
 * code. */
#ifndef HERMOD_DELIVERY_SRS_H
#define HERMOD_DELIVERY_SRS_H

#include <stddef.h>
#include <stdint.h>

#define SRS_MAX_AGE_DAYS 21
/* an address: 64 octets of local part would not hold the scheme; RFC 5321's
 * 256-octet path does */
#define SRS_ADDR_MAX 256

/* The SRS0 address for sender (local@domain) under our_domain. 1 ok (out
 * NUL-terminated), -1 when sender has no domain or the result does not fit. */
int srs_forward(const char *secret, const char *sender, const char *our_domain, int64_t now,
                char *out, size_t outlen);

/* addr ("SRS0=...@our.domain", case-insensitive prefix) back to the original
 * sender: 1 ok (out), 0 not an SRS0 address, -1 an SRS0 address that is
 * malformed, forged (bad hash) or older than SRS_MAX_AGE_DAYS. */
int srs_reverse(const char *secret, const char *addr, int64_t now, char *out, size_t outlen);

#endif
