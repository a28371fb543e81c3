/* libFuzzer target: SEARCH programs through the command parser and then
 * imap_search_compile, checking its invariants: a failure names a static error
 * (and only BADCHARSET as a code) and leaves no program; a compiled program
 * evaluates every key without error for hand-made messages (text keys aside)
 * and writes a reply that is one CRLF-terminated line. The first input byte
 * picks the UID flag and IMAP4rev2. */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parse.h"
#include "imap/imap_search.h"

static void check_program(const struct imap_command *c, uint8_t mode)
{
	struct imap_search *s = NULL;
	const char *code = NULL, *err = NULL;
	if (imap_search_compile(c->args, 0, c->nargs, &s, &code, &err) != 1) {
		if (s != NULL || err == NULL || err[0] == '\0')
			abort();
		if (code != NULL && strcmp(code, "BADCHARSET (US-ASCII UTF-8)") != 0)
			abort();
		return;
	}
	if (s == NULL)
		abort();
	if (mode & 2)
		imap_search_force_esearch(s);
	static const struct imap_search_item items[] = {
	    {1, 2, 3, 100, 0, "\\Seen", "b"},
	    {2, 4, 9, 0, 1706745600, "\\Recent \\Flagged $Junk", "b"},
	    {3, 9, 1, 4096, -86400, "", "b"},
	};
	static const uint32_t saved[] = {4, 7};
	struct imap_search_ctx ctx = {3, 9, saved, 2};
	uint32_t nums[3];
	uint64_t modseqs[3];
	size_t n = 0;
	for (size_t k = 0; k < 3; k++) {
		char *error = NULL;
		int rc = imap_search_needs_msg(s)
		             ? 0
		             : imap_search_match(s, &ctx, NULL, &items[k], &error);
		if (rc != 0 && rc != 1)
			abort();
		free(error);
		if (rc == 1) {
			nums[n] = (mode & 1) ? items[k].uid : items[k].seq;
			modseqs[n++] = items[k].modseq;
		}
	}
	struct evbuffer *out = evbuffer_new();
	if (out == NULL || imap_search_reply(s, "t", mode & 1, nums, modseqs, n, out) != 1)
		abort();
	size_t len = evbuffer_get_length(out);
	if (len > 0) {
		char *line = malloc(len);
		if (line == NULL)
			abort();
		evbuffer_remove(out, line, len);
		if (len < 2 || line[len - 2] != '\r' || line[len - 1] != '\n' ||
		    memchr(line, '\n', len - 1) != NULL || line[0] != '*')
			abort();
		free(line);
	} else if (imap_search_replies(s)) {
		abort();
	}
	evbuffer_free(out);
	uint32_t sel[3];
	if (imap_search_save_select(s, nums, n, sel) > n)
		abort();
	imap_search_free(&s);
	if (s != NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 65536)
		return 0;
	uint8_t mode = data[0];
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	if (p == NULL)
		abort();
	imap_parser_set_authenticated(p, true);
	/* "t SEARCH " + the input as one command: lines, literals inline */
	static const char prefix[] = "t SEARCH ";
	const char *in = (const char *)data + 1;
	size_t len = size - 1, pos = 0;
	bool first = true;
	while (pos <= len) {
		const char *eol = memchr(in + pos, '\n', len - pos);
		size_t end = eol ? (size_t)(eol - in) : len;
		size_t l = end > pos && in[end - 1] == '\r' ? end - 1 : end;
		int r;
		if (first) {
			char *line = malloc(sizeof(prefix) + (l - pos));
			if (line == NULL)
				abort();
			memcpy(line, prefix, sizeof(prefix) - 1);
			memcpy(line + sizeof(prefix) - 1, in + pos, l - pos);
			r = imap_parser_feed_line(p, line, sizeof(prefix) - 1 + (l - pos));
			free(line);
			first = false;
		} else {
			r = imap_parser_feed_line(p, in + pos, l - pos);
		}
		pos = end + 1;
		while (r == IMAP_PARSE_NEED_LITERAL) {
			uint64_t want = imap_parser_literal(p)->size;
			size_t used = 0;
			if (want > (pos <= len ? len - pos : 0))
				goto out;
			r = imap_parser_feed_literal(p, in + pos, (size_t)want, &used);
			pos += used;
		}
		if (r == IMAP_PARSE_NEED_LINE)
			continue;
		if (r == IMAP_PARSE_COMMAND)
			check_program(imap_parser_command(p), mode);
		break;
	}
out:
	imap_parser_free(&p);
	return 0;
}
