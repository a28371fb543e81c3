/* libFuzzer target: the SMTP client's reply parser, EHLO capabilities and wire
 * encoder (src/smtp/smtp_client_parse.c). The first octet picks a split size;
 * the replies must parse the same whole and split; every line of the wire
 * copy must end in CRLF, hold no other CR or LF, and have at most 998 octets;
 * with dot-stuffing no line may be a lone '.' before the end. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_client_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses all replies of s; returns a digest (codes and line counts). */
static uint64_t replies(const char *s, size_t len, size_t split)
{
	struct smtp_reply_parser p;
	uint64_t digest = 1;
	size_t off = 0;

	smtp_reply_parser_init(&p);
	while (off < len) {
		size_t n = split == 0 || split > len - off ? len - off : split, used;
		enum smtp_reply_result rc = smtp_reply_feed(&p, s + off, n, &used);
		if (used > n)
			abort();
		off += used;
		if (rc == SMTP_REPLY_ERROR) {
			digest = digest * 31 + 7;
			break;
		}
		if (rc == SMTP_REPLY_DONE) {
			struct smtp_ehlo_caps caps;
			struct buf b;
			if (p.reply.code < 200 || p.reply.code > 559 || p.reply.nlines == 0)
				abort();
			smtp_ehlo_caps_parse(&p.reply, &caps);
			buf_init(&b, 0);
			if (smtp_reply_format(&p.reply, &b, 300) == 1 && b.len > 300 + 16)
				abort();
			buf_free(&b);
			digest = digest * 31 + (uint64_t)p.reply.code * 1000 + p.reply.nlines;
			smtp_reply_parser_reset(&p);
		}
	}
	smtp_reply_parser_free(&p);
	return digest;
}

static void check_wire(const char *s, size_t len, size_t split, int dotstuff)
{
	struct smtp_wire w;
	struct buf out;

	buf_init(&out, 0);
	smtp_wire_init(&w, dotstuff);
	for (size_t off = 0; off < len;) {
		size_t n = split == 0 || split > len - off ? len - off : split;
		if (smtp_wire_encode(&w, s + off, n, &out) != 1)
			abort();
		off += n;
	}
	if (smtp_wire_finish(&w, &out) != 1)
		abort();
	size_t start = 0;
	for (size_t i = 0; i < out.len; i++) {
		if (out.data[i] == '\r') {
			if (i + 1 >= out.len || out.data[i + 1] != '\n')
				abort();
			size_t l = i - start;
			if (l > SMTP_WIRE_LINE_MAX)
				abort();
			/* a lone dot ends DATA: only the last line may be one */
			if (dotstuff && l == 1 && out.data[start] == '.' && i + 2 != out.len)
				abort();
			i++;
			start = i + 1;
		} else if (out.data[i] == '\n') {
			abort();
		}
	}
	if (start != out.len)
		abort();
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = data[0] % 17;
	const char *s = (const char *)data + 1;
	size_t len = size - 1;

	if (replies(s, len, 0) != replies(s, len, split == 0 ? 1 : split))
		abort();
	check_wire(s, len, split, 1);
	check_wire(s, len, split, 0);
	return 0;
}
