/* libFuzzer target: the line-session framing (line_session_reader_* in
 * src/net/line_session.c) driven as the session drives it, by a small protocol
 * whose commands are in the input:
 *   "R<digits>"  RAW: that many octets (taken at most 7 per call)
 *   "B"          BODY: octets up to and including the next '.', then LINES again
 *                (a '!' is not taken: the protocol waits there for ever)
 *   "M<digit>"   a new line limit (the per-state limit)
 * and whose line_max_for gives lines starting "AUTH " four times the limit and
 * lines starting "BIG " more than LINE_SESSION_LINE_MAX.
 *
 * Input: byte 0 picks the line limit, byte 1 how many of the next bytes are
 * chunk sizes; the rest is the stream. It is fed whole, in chunks of those sizes
 * (each its own buffer chain, over memory the target looks at afterwards), and
 * one octet a time; after the last chunk the peer has closed (half-close: what
 * is complete has been taken, the rest stays).
 * Checked (abort otherwise): the three runs see the same lines, overlong lines,
 * data and mode switches; every line is the stream's octets up to its line end,
 * within the limit that applies to it, and every overlong line is over it; a RAW
 * chunk hands over exactly its count; never more than a line is buffered; every
 * octet is accounted for; and every octet a line took (taken, overlong or
 * skipped) has been wiped where it lay in the buffer's memory. */
#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/line_session.h"

struct run {
	struct line_session_reader rd;
	struct evbuffer *in;
	const uint8_t *src;
	size_t src_len;
	size_t fed;          /* octets of src added to in so far */
	size_t pos;          /* octets of src taken off in so far */
	size_t line_start;   /* where the line being read began */
	uint64_t raw_expect; /* RAW: octets the chunk still owes */
	uint8_t *log;        /* what the protocol saw, in order */
	size_t log_len, log_cap;
	size_t data_rec; /* offset of the last record when it is data, else SIZE_MAX */
	uint8_t *mem;    /* chunks run: the memory its buffer chains reference */
	uint8_t *kind;   /* per octet taken: 'L' a line's (wiped), 'D' data (kept) */
};

static void log_add(struct run *r, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (r->log_len + n > r->log_cap) {
		r->log_cap = (r->log_len + n) * 2 + 64;
		r->log = realloc(r->log, r->log_cap);
		if (r->log == NULL)
			abort();
	}
	memcpy(r->log + r->log_len, p, n);
	r->log_len += n;
}

static void log_record(struct run *r, char tag, const void *p, size_t n)
{
	uint32_t n32 = (uint32_t)n;
	log_add(r, &tag, 1);
	log_add(r, &n32, sizeof(n32));
	log_add(r, p, n);
	r->data_rec = SIZE_MAX;
}

/* Data pieces are split differently by each run: consecutive ones are one record. */
static void log_data(struct run *r, const char *p, size_t n)
{
	if (r->data_rec == SIZE_MAX) {
		log_record(r, 'D', NULL, 0);
		r->data_rec = r->log_len - 1 - sizeof(uint32_t);
	}
	uint32_t n32;
	memcpy(&n32, r->log + r->data_rec + 1, sizeof(n32));
	n32 += (uint32_t)n;
	memcpy(r->log + r->data_rec + 1, &n32, sizeof(n32));
	log_add(r, p, n);
}

/* The limit that applies to a line, from its first octets (the specification the
 * reader must meet, whatever it has buffered when it decides). */
static size_t spec_limit(const struct run *r, const uint8_t *start, size_t n)
{
	if (n >= 5 && memcmp(start, "AUTH ", 5) == 0)
		return 4 * r->rd.line_max;
	if (n >= 4 && memcmp(start, "BIG ", 4) == 0)
		return LINE_SESSION_LINE_MAX;
	return r->rd.line_max;
}

static size_t fz_line_max_for(void *ctx, const char *start, size_t len)
{
	struct run *r = ctx;
	/* asked only for a line over the limit (>= 16 octets here): its first 16 */
	if (len != 16 || r->line_start + len > r->fed ||
	    memcmp(start, r->src + r->line_start, len) != 0)
		abort();
	if (memcmp(start, "AUTH ", 5) == 0)
		return 4 * r->rd.line_max;
	if (memcmp(start, "BIG ", 4) == 0)
		return SIZE_MAX;
	return 0;
}

static void fz_on_line(struct run *r, const char *line, size_t len)
{
	log_record(r, 'L', line, len);
	if (len >= 2 && line[0] == 'R' && line[1] >= '0' && line[1] <= '9') {
		uint64_t n = 0;
		for (size_t i = 1; i < len && i < 7 && line[i] >= '0' && line[i] <= '9'; i++)
			n = n * 10 + (uint64_t)(line[i] - '0');
		r->rd.mode = LINE_SESSION_RAW;
		r->rd.raw_left = n;
		r->raw_expect = n;
	} else if (len == 1 && line[0] == 'B') {
		r->rd.mode = LINE_SESSION_BODY;
	} else if (len == 2 && line[0] == 'M' && line[1] >= '0' && line[1] <= '9') {
		r->rd.line_max = 16 + (size_t)(line[1] - '0') * 12;
	}
}

static long fz_on_data(struct run *r, const char *data, size_t len)
{
	if (len == 0 || r->pos + len > r->fed || memcmp(data, r->src + r->pos, len) != 0)
		abort();
	size_t used;
	if (r->rd.mode == LINE_SESSION_RAW) {
		if (len > r->raw_expect)
			abort();
		used = len < 7 ? len : 7;
		r->raw_expect -= used;
	} else {
		/* up to a '!' (where it waits), or up to and including a '.' */
		for (used = 0; used < len && data[used] != '!' && data[used] != '.'; used++)
			;
		if (used < len && data[used] == '.') {
			used++;
			r->rd.mode = LINE_SESSION_LINES;
		}
	}
	log_data(r, data, used);
	return (long)used;
}

/* The octets of one LINES step, src[pos, pos + took), against what the reader
 * said of them. */
static void check_line_step(struct run *r, enum line_session_read k, const char *line, size_t len,
                            size_t took)
{
	const uint8_t *s = r->src + r->pos;
	if (r->pos + took > r->fed)
		abort();
	switch (k) {
	case LINE_SESSION_READ_NONE:
		/* nothing, or what was buffered of a line over its limit */
		if (memchr(s, '\n', took) != NULL || (took > 0 && !r->rd.discarding))
			abort();
		if (took > 0 &&
		    r->pos + took - r->line_start <=
		        spec_limit(r, r->src + r->line_start, r->pos + took - r->line_start))
			abort();
		if (took > 0 && r->pos + took != r->fed)
			abort();
		break;
	case LINE_SESSION_READ_LINE: {
		bool cr = took == len + 2;
		if (r->line_start != r->pos || (took != len + 1 && !cr) || s[took - 1] != '\n' ||
		    (cr && s[len] != '\r') || memcmp(s, line, len) != 0 || line[len] != '\0' ||
		    memchr(line, '\n', len) != NULL)
			abort();
		/* a bare LF counts as CRLF */
		if (len + 2 > spec_limit(r, s, len))
			abort();
		break;
	}
	case LINE_SESSION_READ_TOO_LONG: {
		const uint8_t *start = r->src + r->line_start;
		size_t whole = r->pos + took - r->line_start; /* line end included */
		if (took == 0 || s[took - 1] != '\n' || memchr(start, '\n', whole - 1) != NULL)
			abort();
		size_t content = whole - 1 - (whole >= 2 && start[whole - 2] == '\r' ? 1 : 0);
		if (content + 2 <= spec_limit(r, start, content))
			abort();
		break;
	}
	}
}

/* Takes every item the buffered input holds, as the session does. */
static void run_process(struct run *r)
{
	for (;;) {
		if (r->rd.mode == LINE_SESSION_LINES) {
			char line[LINE_SESSION_LINE_MAX + 1];
			size_t len = 0;
			size_t before = evbuffer_get_length(r->in);
			enum line_session_read k =
			    line_session_reader_line(&r->rd, r->in, line, &len);
			size_t took = before - evbuffer_get_length(r->in);
			check_line_step(r, k, line, len, took);
			memset(r->kind + r->pos, 'L', took);
			r->pos += took;
			if (k == LINE_SESSION_READ_NONE)
				return;
			r->line_start = r->pos;
			if (k == LINE_SESSION_READ_LINE)
				fz_on_line(r, line, len);
			else
				log_record(r, 'T', NULL, 0);
			continue;
		}
		enum line_session_mode mode = r->rd.mode;
		if (mode == LINE_SESSION_RAW && r->rd.raw_left == 0) {
			if (r->raw_expect != 0)
				abort();
			r->rd.mode = LINE_SESSION_LINES;
			log_record(r, 'E', NULL, 0);
			r->line_start = r->pos;
			continue;
		}
		const char *data = NULL;
		size_t n = line_session_reader_data(&r->rd, r->in, &data);
		if (n == 0)
			return;
		if (mode == LINE_SESSION_RAW && n > r->rd.raw_left)
			abort();
		long used = fz_on_data(r, data, n);
		line_session_reader_used(&r->rd, r->in, mode, (size_t)used);
		memset(r->kind + r->pos, 'D', (size_t)used);
		r->pos += (size_t)used;
		r->line_start = r->pos;
		if (used == 0 && r->rd.mode == mode)
			return;
	}
}

/* After each chunk: everything complete has been taken; what is left is part of
 * one line within its limit (never more than a line is buffered), or nothing in
 * RAW and BODY (unless the protocol waits at a '!'). */
static void check_rest(const struct run *r)
{
	size_t left = evbuffer_get_length(r->in);
	if (r->pos + left != r->fed)
		abort();
	const uint8_t *s = r->src + r->pos;
	switch (r->rd.mode) {
	case LINE_SESSION_LINES:
		if (memchr(s, '\n', left) != NULL)
			abort();
		if (r->rd.discarding ? left > r->rd.line_max : left > spec_limit(r, s, left))
			abort();
		break;
	case LINE_SESSION_RAW:
		if (left != 0 || r->rd.raw_left == 0 || r->rd.raw_left != r->raw_expect)
			abort();
		break;
	case LINE_SESSION_BODY:
		if (left != 0 && s[0] != '!')
			abort();
		break;
	}
}

enum feed { FEED_WHOLE, FEED_CHUNKS, FEED_BYTES };

static void run_all(struct run *r, const uint8_t *src, size_t len, size_t line_max,
                    const uint8_t *sizes, size_t nsizes, enum feed how)
{
	memset(r, 0, sizeof(*r));
	r->rd.mode = LINE_SESSION_LINES;
	r->rd.line_max = line_max;
	r->rd.line_max_for = fz_line_max_for;
	r->rd.ctx = r;
	r->src = src;
	r->src_len = len;
	r->data_rec = SIZE_MAX;
	r->in = evbuffer_new();
	r->kind = malloc(len + 1);
	r->mem = malloc(len + 1);
	if (r->in == NULL || r->kind == NULL || r->mem == NULL)
		abort();
	memcpy(r->mem, src, len);
	for (size_t i = 0; r->fed < len; i++) {
		size_t n = len - r->fed;
		if (how == FEED_BYTES)
			n = 1;
		else if (how == FEED_CHUNKS && nsizes > 0 && (size_t)sizes[i % nsizes] % 64 + 1 < n)
			n = (size_t)sizes[i % nsizes] % 64 + 1;
		if (how == FEED_CHUNKS) {
			/* a chain of its own (lines and pieces cross chain borders), over
			 * memory looked at after the run */
			if (evbuffer_add_reference(r->in, r->mem + r->fed, n, NULL, NULL) != 0)
				abort();
		} else {
			/* appended as a read would: into the last chain while it has room */
			if (evbuffer_add(r->in, src + r->fed, n) != 0)
				abort();
		}
		r->fed += n;
		run_process(r);
		check_rest(r);
	}
	/* the peer's EOF (half-close): what is left is an unfinished item, checked
	 * above; nothing more comes */
	if (how == FEED_CHUNKS) {
		/* every octet a line took is wiped where it lay, data and what is still
		 * buffered are as they came */
		for (size_t i = 0; i < len; i++) {
			bool wiped = i < r->pos && r->kind[i] == 'L';
			if (r->mem[i] != (wiped ? 0 : src[i]))
				abort();
		}
	}
}

static void same(const struct run *a, const struct run *b)
{
	if (a->log_len != b->log_len ||
	    (a->log_len > 0 && memcmp(a->log, b->log, a->log_len) != 0) ||
	    a->rd.mode != b->rd.mode || a->rd.raw_left != b->rd.raw_left ||
	    a->rd.line_max != b->rd.line_max || a->rd.discarding != b->rd.discarding)
		abort();
	/* the skipped front of an overlong line may be dropped at different points */
	if (!a->rd.discarding && a->pos != b->pos)
		abort();
}

static void run_free(struct run *r)
{
	evbuffer_free(r->in);
	free(r->log);
	free(r->kind);
	free(r->mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t line_max = 16 + data[0] % 112;
	size_t nsizes = (size_t)data[1] % 8 + 1;
	if (size < 2 + nsizes)
		return 0;
	const uint8_t *sizes = data + 2;
	const uint8_t *src = data + 2 + nsizes;
	size_t len = size - 2 - nsizes;

	struct run whole, chunks, bytes;
	run_all(&whole, src, len, line_max, sizes, nsizes, FEED_WHOLE);
	run_all(&chunks, src, len, line_max, sizes, nsizes, FEED_CHUNKS);
	run_all(&bytes, src, len, line_max, sizes, nsizes, FEED_BYTES);
	same(&whole, &chunks);
	same(&whole, &bytes);
	run_free(&whole);
	run_free(&chunks);
	run_free(&bytes);
	return 0;
}
