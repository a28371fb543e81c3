/* libFuzzer target: the DATA/BDAT body reader. The first byte picks the mode,
 * limits and a split position; the rest is fed whole, split in two, and one
 * byte at a time. All three must agree exactly (abort otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

struct run {
	size_t consumed;
	bool done, line_too_long, too_big;
	uint64_t size;
	struct buf out;
};

static void feed_all(struct smtp_body_reader *r, const char *in, size_t len, size_t step,
                     struct run *res)
{
	size_t pos = 0;
	while (pos < len && !r->done) {
		size_t n = len - pos;
		if (step > 0 && step < n)
			n = step;
		long c = smtp_body_reader_feed(r, in + pos, n, &res->out);
		if (c < 0 || (size_t)c > n || ((size_t)c < n && !r->done))
			abort();
		pos += (size_t)c;
	}
	res->consumed = pos;
}

static void run(enum smtp_body_mode mode, size_t max_line, uint64_t max_size, const char *in,
                size_t len, size_t split, bool bytewise, struct run *res)
{
	struct smtp_body_reader r;
	smtp_body_reader_init(&r, mode, max_line, max_size);
	buf_init(&res->out, 0);
	if (bytewise) {
		feed_all(&r, in, len, 1, res);
	} else if (split > 0 && split < len) {
		struct run a = {0}, b = {0};
		a.out = res->out;
		feed_all(&r, in, split, 0, &a);
		res->out = a.out;
		res->consumed = a.consumed;
		if (!r.done) {
			b.out = res->out;
			feed_all(&r, in + split, len - split, 0, &b);
			res->out = b.out;
			res->consumed += b.consumed;
		}
	} else {
		feed_all(&r, in, len, 0, res);
	}
	if (mode == SMTP_BODY_MODE_BDAT)
		smtp_body_reader_finish(&r, &res->out);
	res->done = r.done;
	res->line_too_long = r.line_too_long;
	res->too_big = r.too_big;
	res->size = r.size;
	if (!r.too_big && r.size != res->out.len)
		abort();
	if (r.max_size != 0 && res->out.len > r.max_size)
		abort();
}

static void same(const struct run *a, const struct run *b)
{
	if (a->consumed != b->consumed || a->done != b->done ||
	    a->line_too_long != b->line_too_long || a->too_big != b->too_big ||
	    a->size != b->size || a->out.len != b->out.len ||
	    (a->out.len > 0 && memcmp(a->out.data, b->out.data, a->out.len) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	enum smtp_body_mode mode = (ctl & 1) ? SMTP_BODY_MODE_BDAT : SMTP_BODY_MODE_DATA;
	size_t max_line = (ctl & 2) ? 8 : 0;
	uint64_t max_size = (ctl & 4) ? 32 : 0;
	size_t split = len > 0 ? (size_t)(ctl >> 3) * len / 31 : 0;

	struct run whole, halves, bytes;
	run(mode, max_line, max_size, in, len, 0, false, &whole);
	run(mode, max_line, max_size, in, len, split, false, &halves);
	run(mode, max_line, max_size, in, len, 0, true, &bytes);
	same(&whole, &halves);
	same(&whole, &bytes);
	if (mode == SMTP_BODY_MODE_BDAT && whole.consumed != len)
		abort();
	/* without a size cap the stored form is canonical: no bare CR or LF */
	if (max_size == 0) {
		const char *o = whole.out.data;
		for (size_t i = 0; i < whole.out.len; i++) {
			if (o[i] == '\r' && (i + 1 == whole.out.len || o[i + 1] != '\n'))
				abort();
			if (o[i] == '\n' && (i == 0 || o[i - 1] != '\r'))
				abort();
		}
	}
	buf_free(&whole.out);
	buf_free(&halves.out);
	buf_free(&bytes.out);
	return 0;
}
