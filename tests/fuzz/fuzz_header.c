/* libFuzzer target: header field lookup and address-list parsing. */
#include <stddef.h>
#include <stdint.h>

#include "mail/header.h"

static void fuzz_cb(void *ctx, const char *addr, size_t len)
{
	size_t *total = ctx;
	for (size_t i = 0; i < len; i++)
		*total += (unsigned char)addr[i]; /* touch every byte */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	const char *v;
	size_t vl, total = 0;
	(void)mail_header_section_len(msg, size);
	if (mail_header_find(msg, size, "From", &v, &vl) == 1)
		(void)mail_header_addresses(v, vl, fuzz_cb, &total);
	(void)mail_header_addresses(msg, size, fuzz_cb, &total);
	return 0;
}
