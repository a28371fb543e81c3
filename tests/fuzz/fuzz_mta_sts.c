/* libFuzzer target: what a recipient domain publishes for MTA-STS
 * (src/delivery/mta_sts.c): the policy file fetched over HTTPS and the
 * _mta-sts TXT record. The first octet picks the parser. Neither may read or
 * write out of bounds; what they accept must hold their invariants (bounded
 * patterns that match themselves, an id of 1..32 alphanumerics). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/mta_sts.h"
#include "dns/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mta_sts_policy pol;
	char id[MTA_STS_ID_MAX + 1];
	const char *why = NULL;

	if (size == 0)
		return 0;
	/* a copy of exactly size octets, so ASan sees any read past the end */
	size_t n = size - 1;
	char *in = malloc(n > 0 ? n : 1);
	if (in == NULL)
		return 0;
	memcpy(in, data + 1, n);
	if (data[0] & 1) {
		if (mta_sts_policy_parse(in, n, &pol, &why) == 1) {
			if (pol.nmx > MTA_STS_MX_MAX || pol.max_age > MTA_STS_MAX_AGE_MAX)
				abort();
			if (pol.nmx == 0 && pol.mode != MTA_STS_MODE_NONE)
				abort();
			for (size_t i = 0; i < pol.nmx; i++) {
				size_t l = strlen(pol.mx[i]);
				if (l == 0 || l > MTA_STS_NAME_MAX)
					abort();
				if (pol.mx[i][0] != '*' && !mta_sts_mx_match(&pol, pol.mx[i]))
					abort();
			}
		} else if (why == NULL) {
			abort();
		}
	} else {
		/* several records: split at NUL octets */
		struct dns_txt txt[8];
		size_t k = 0, start = 0;
		for (size_t i = 0; i <= n && k < 8; i++) {
			if (i == n || in[i] == '\0') {
				txt[k].data = in + start;
				txt[k].len = i - start;
				k++;
				start = i + 1;
			}
		}
		int rc = mta_sts_txt_select(txt, k, id, &why);
		if (rc == 1) {
			size_t l = strlen(id);
			if (l == 0 || l > MTA_STS_ID_MAX)
				abort();
		} else if (rc < 0 && why == NULL) {
			abort();
		}
		/* the pattern matcher on arbitrary names */
		char host[300], pat[300];
		size_t hl = n < sizeof(host) - 1 ? n : sizeof(host) - 1;
		memcpy(host, in, hl);
		host[hl] = '\0';
		memcpy(pat, "*.", 2);
		memcpy(pat + 2, host, hl < sizeof(pat) - 3 ? hl : sizeof(pat) - 3);
		pat[2 + (hl < sizeof(pat) - 3 ? hl : sizeof(pat) - 3)] = '\0';
		(void)mta_sts_pattern_match(pat, host);
		(void)mta_sts_pattern_match(host, host);
	}
	free(in);
	return 0;
}
