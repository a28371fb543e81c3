/* libFuzzer target: header field lookup, address-list parsing, and the
 * incremental header scanner: fed in one piece, one octet at a time and in
 * pieces chosen by the input, it must describe exactly what the one-piece
 * read-back (mail_header_section_len / mail_header_find, as the submission
 * checks did it before) describes, under the real bound and a small one. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/header_ref.h"
#include "mail/header.h"

static void fuzz_cb(void *ctx, const char *addr, size_t len)
{
	size_t *total = ctx;
	for (size_t i = 0; i < len; i++)
		*total += (unsigned char)addr[i]; /* touch every byte */
}

static void fuzz_same(const struct buf *a, const struct buf *b)
{
	if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
		abort();
}

static void fuzz_scan(const char *msg, size_t len, size_t max, const size_t *split,
		      size_t nsplit)
{
	static const size_t one[] = {1};
	struct buf ref, got;
	buf_init(&ref, 0);
	buf_init(&got, 0);
	header_ref_describe(msg, len, max, &ref);
	header_ref_scan(msg, len, max, NULL, 0, &got);
	fuzz_same(&ref, &got);
	buf_reset(&got);
	header_ref_scan(msg, len, max, one, 1, &got);
	fuzz_same(&ref, &got);
	buf_reset(&got);
	header_ref_scan(msg, len, max, split, nsplit, &got);
	fuzz_same(&ref, &got);
	buf_free(&ref);
	buf_free(&got);
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

	/* the first 4 octets (when there are more) pick a small bound and the
	 * piece sizes; the rest is the message */
	if (size < 4) {
		fuzz_scan(msg, size, 256 * 1024, NULL, 0);
		return 0;
	}
	size_t split[3] = {(size_t)data[1] % 16 + 1, (size_t)data[2] % 16 + 1,
			   (size_t)data[3] % 64 + 1};
	const char *m = msg + 4;
	size_t mlen = size - 4;
	fuzz_scan(m, mlen, 256 * 1024, split, 3);
	/* at least 3: see header_ref.h */
	fuzz_scan(m, mlen, (size_t)data[0] % (mlen + 4) + 3, split, 3);
	return 0;
}
