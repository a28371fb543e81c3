#include "delivery/route.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

long route_mx_order(struct dns_mx *mx, size_t n, uint32_t (*rnd)(void *ctx), void *ctx)
{
	if (n == 1 && strcmp(mx[0].host, ".") == 0)
		return -1;
	/* drop "." hosts (meaningless next to real ones) */
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(mx[i].host, ".") != 0 && mx[i].host[0] != '\0')
			mx[k++] = mx[i];
	if (k == 0 && n > 0)
		return -1;
	/* insertion sort by preference (a handful of records), then shuffle each
	 * run of equal preferences (Fisher-Yates) */
	for (size_t i = 1; i < k; i++) {
		struct dns_mx t = mx[i];
		size_t j = i;
		while (j > 0 && mx[j - 1].preference > t.preference) {
			mx[j] = mx[j - 1];
			j--;
		}
		mx[j] = t;
	}
	for (size_t start = 0; start < k;) {
		size_t end = start + 1;
		while (end < k && mx[end].preference == mx[start].preference)
			end++;
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + rnd(ctx) % (i - start + 1);
			if (j != i) {
				struct dns_mx t = mx[i];
				mx[i] = mx[j];
				mx[j] = t;
			}
		}
		start = end;
	}
	return (long)k;
}

const char *route_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at != NULL ? at + 1 : "";
}

int route_domain_literal(const char *domain, int *family_r, unsigned char addr_r[16])
{
	size_t len = strlen(domain);
	char tmp[64];

	if (len == 0 || domain[0] != '[')
		return 0;
	if (len < 3 || domain[len - 1] != ']' || len - 2 >= sizeof(tmp))
		return -1;
	memcpy(tmp, domain + 1, len - 2);
	tmp[len - 2] = '\0';
	if (strncasecmp(tmp, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, tmp + 5, addr_r) != 1)
			return -1;
		*family_r = AF_INET6;
		return 1;
	}
	if (inet_pton(AF_INET, tmp, addr_r) != 1)
		return -1;
	*family_r = AF_INET;
	return 1;
}

int64_t route_next_attempt(int64_t now, unsigned attempts, const unsigned *sched, size_t n)
{
	if (n == 0)
		return now + 300;
	size_t i = attempts == 0 ? 0 : attempts - 1;
	if (i >= n)
		i = n - 1;
	return now + (int64_t)sched[i];
}

bool route_expired(int64_t now, int64_t created, unsigned expiry)
{
	return now - created >= (int64_t)expiry;
}
