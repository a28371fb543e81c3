/* libFuzzer target: DNS record data (src/dns/dns_rr.c). The input is a type
 * octet, then records, each a 2-octet length and that many octets. Parsing must
 * never read past a record; a parsed name must be valid presentation text
 * within DNS_NAME_MAX. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns/dns.h"

#define FUZZ_RECORDS_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum dns_type types[] = {DNS_TYPE_A,   DNS_TYPE_AAAA, DNS_TYPE_MX,
	                                      DNS_TYPE_PTR, DNS_TYPE_TXT,  DNS_TYPE_TLSA};
	char *rdata[FUZZ_RECORDS_MAX];
	int len[FUZZ_RECORDS_MAX];
	size_t n = 0, i = 1;

	if (size < 1)
		return 0;
	enum dns_type type = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	while (n < FUZZ_RECORDS_MAX && i + 2 <= size) {
		size_t l = (size_t)data[i] << 8 | data[i + 1];
		i += 2;
		if (l > size - i)
			l = size - i;
		/* each record in its own allocation: ASan sees any overread */
		rdata[n] = malloc(l > 0 ? l : 1);
		if (rdata[n] == NULL)
			break;
		memcpy(rdata[n], data + i, l);
		len[n++] = (int)l;
		i += l;
	}
	struct dns_answer a = {.type = type};
	if (dns_answer_parse(&a, type, rdata, len, n) == 1) {
		for (size_t k = 0; k < a.n; k++) {
			const char *name = type == DNS_TYPE_MX    ? a.mx[k].host
			                   : type == DNS_TYPE_PTR ? a.ptr[k].name
			                                          : NULL;
			if (name == NULL)
				continue;
			size_t nl = strlen(name);
			if (nl == 0 || nl > DNS_NAME_MAX)
				abort();
			for (size_t c = 0; c < nl; c++)
				if ((unsigned char)name[c] <= ' ' || (unsigned char)name[c] >= 0x7f)
					abort();
		}
		dns_answer_clear(&a);
	}
	for (size_t k = 0; k < n; k++)
		free(rdata[k]);
	return 0;
}
