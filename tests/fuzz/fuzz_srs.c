/* libFuzzer target: SRS addresses as peers send them in RCPT TO
 * (src/delivery/srs.c). srs_reverse must never read or write out of bounds and
 * must accept what srs_forward made, giving back the original address. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/srs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char secret[] = "fuzz-secret-0123456789";
	char in[600], out[SRS_ADDR_MAX + 1], fwd[SRS_ADDR_MAX + 1], back[SRS_ADDR_MAX + 1];
	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';
	int64_t now = 1700000000;

	/* whatever arrives */
	int r = srs_reverse(secret, in, now, out, sizeof(out));
	if (r > 0 && strlen(out) >= sizeof(out))
		abort();
	/* what we make comes back */
	if (strchr(in, '@') != NULL && srs_forward(secret, in, "example.test", now, fwd, sizeof(fwd)) > 0) {
		if (srs_reverse(secret, fwd, now, back, sizeof(back)) != 1 || strcmp(back, in) != 0)
			abort();
	}
	return 0;
}
