/* libFuzzer target: POP3 command lines through pop3_command_parse and
 * pop3_parse_number, plus the same bytes as a message through the TOP cut and the
 * dot-stuffing writer (checked by undoing the stuffing), and the chunked reply
 * body (TOP cut + stuffing fed in three pieces) against the one-piece result. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/pop3_parse.h"

struct sink {
	char *data;
	size_t len, cap;
};

static void sink_emit(void *ctx, const char *data, size_t len, bool from_input)
{
	struct sink *s = ctx;
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2 + 16;
		s->data = realloc(s->data, s->cap);
		if (s->data == NULL)
			abort();
	}
	memcpy(s->data + s->len, data, len);
	s->len += len;
}

static void check_stuffing(const char *msg, size_t len, size_t split)
{
	struct sink out = {0};
	struct pop3_dotstuff d;
	pop3_dotstuff_init(&d);
	pop3_dotstuff_feed(&d, msg, split, sink_emit, &out);
	pop3_dotstuff_feed(&d, msg + split, len - split, sink_emit, &out);
	pop3_dotstuff_finish(&d, sink_emit, &out);
	/* ends in ".\r\n" after a line end, and un-stuffs to the input */
	if (out.len < 3 || memcmp(out.data + out.len - 3, ".\r\n", 3) != 0)
		abort();
	size_t body = out.len - 3, o = 0;
	bool bol = true;
	char *un = malloc(body + 1);
	if (un == NULL)
		abort();
	for (size_t i = 0; i < body; i++) {
		if (bol && out.data[i] == '.') {
			/* every line starting with '.' was stuffed */
			if (i + 1 >= body || out.data[i + 1] != '.')
				abort();
			i++;
		}
		un[o++] = out.data[i];
		bol = out.data[i] == '\n';
	}
	if (body > 0 && !bol)
		abort(); /* the terminator must start a line */
	if (o < len || memcmp(un, msg, len) != 0)
		abort();
	if (o != len && !(o == len + 2 && memcmp(un + len, "\r\n", 2) == 0))
		abort();
	free(un);
	free(out.data);
}

/* The reply body fed in three pieces gives what the one-piece TOP cut and
 * dot-stuffing give. */
static void check_reply_body(const char *msg, size_t len, uint32_t lines, size_t a, size_t b)
{
	struct sink one = {0}, three = {0};
	size_t cut = pop3_top_length(msg, len, lines);
	struct pop3_dotstuff d;
	pop3_dotstuff_init(&d);
	pop3_dotstuff_feed(&d, msg, cut, sink_emit, &one);
	pop3_dotstuff_finish(&d, sink_emit, &one);
	struct pop3_reply_body r;
	pop3_reply_body_init(&r, true, lines);
	size_t used = pop3_reply_body_feed(&r, msg, a, sink_emit, &three);
	used += pop3_reply_body_feed(&r, msg + a, b - a, sink_emit, &three);
	used += pop3_reply_body_feed(&r, msg + b, len - b, sink_emit, &three);
	pop3_reply_body_finish(&r, sink_emit, &three);
	if (used != cut || one.len != three.len || memcmp(one.data, three.data, one.len) != 0)
		abort();
	free(one.data);
	free(three.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct pop3_command cmd;

	if (size > POP3_AUTH_LINE_MAX)
		return 0;
	if (pop3_command_parse(line, size, &cmd) == 1) {
		if (cmd.args_len > size ||
		    (cmd.args_len > 0 &&
		     (cmd.args < line || cmd.args + cmd.args_len > line + size)))
			abort();
		if (cmd.argc > POP3_ARGS_MAX + 1)
			abort();
		for (unsigned i = 0; i < cmd.argc && i < POP3_ARGS_MAX; i++) {
			uint32_t n;
			if (cmd.argl[i] == 0 || cmd.argv[i] < cmd.args ||
			    cmd.argv[i] + cmd.argl[i] > cmd.args + cmd.args_len ||
			    memchr(cmd.argv[i], ' ', cmd.argl[i]) != NULL)
				abort();
			(void)pop3_parse_number(cmd.argv[i], cmd.argl[i], &n);
		}
	}
	for (uint32_t lines = 0; lines < 3; lines++) {
		size_t top = pop3_top_length(line, size, lines);
		if (top > size)
			abort();
	}
	check_stuffing(line, size, size > 0 ? data[0] % (size + 1) : 0);
	if (size > 0) {
		size_t a = data[0] % (size + 1);
		size_t b = a + (size > 1 ? data[1] % (size - a + 1) : 0);
		check_reply_body(line, size, (uint32_t)(data[size - 1] % 4), a, b);
	}
	return 0;
}
