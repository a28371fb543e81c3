/* libFuzzer target: mail_address_parse_path, mail_address_parse and
 * mail_domain_valid with every flag combination. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/address.h"

static void check(const struct mail_address *a, bool utf8)
{
	if (a->addr == NULL)
		abort();
	if (a->null)
		return;
	if (a->local == NULL || a->domain == NULL)
		abort();
	if (strlen(a->local) > MAIL_LOCALPART_MAX || strlen(a->domain) > MAIL_DOMAIN_MAX)
		abort();
	if (a->utf8 && !utf8)
		abort();
	/* addr must parse back to itself */
	struct mail_address b;
	const char *err;
	if (mail_address_parse(a->addr, strlen(a->addr), utf8, &b, &err) != 1)
		abort();
	if (strcmp(a->addr, b.addr) != 0 || strcmp(a->local, b.local) != 0 ||
	    strcmp(a->domain, b.domain) != 0 || a->utf8 != b.utf8)
		abort();
	mail_address_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct mail_address a;
	const char *err;
	size_t consumed;

	for (int n = 0; n < 2; n++) {
		for (int u = 0; u < 2; u++) {
			err = NULL;
			if (mail_address_parse_path(s, size, n, u, &a, &consumed, &err) == 1) {
				if (consumed > size || consumed > MAIL_PATH_MAX ||
				    s[consumed - 1] != '>')
					abort();
				if (a.null && !n)
					abort();
				check(&a, u);
				mail_address_free(&a);
			} else if (err == NULL || a.addr != NULL) {
				abort();
			}
		}
	}
	for (int u = 0; u < 2; u++) {
		err = NULL;
		if (mail_address_parse(s, size, u, &a, &err) == 1) {
			check(&a, u);
			mail_address_free(&a);
		} else if (err == NULL) {
			abort();
		}
		(void)mail_domain_valid(s, size, u);
	}
	return 0;
}
