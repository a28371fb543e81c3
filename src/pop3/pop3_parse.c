/* POP3 command lines, numbers, dot-stuffing and TOP (see pop3_parse.h). */
#include "pop3/pop3_parse.h"

#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	enum pop3_verb verb;
} pop3_verbs[] = {
    {"USER", POP3_VERB_USER}, {"PASS", POP3_VERB_PASS}, {"AUTH", POP3_VERB_AUTH},
    {"CAPA", POP3_VERB_CAPA}, {"STLS", POP3_VERB_STLS}, {"QUIT", POP3_VERB_QUIT},
    {"STAT", POP3_VERB_STAT}, {"LIST", POP3_VERB_LIST}, {"RETR", POP3_VERB_RETR},
    {"DELE", POP3_VERB_DELE}, {"NOOP", POP3_VERB_NOOP}, {"RSET", POP3_VERB_RSET},
    {"TOP", POP3_VERB_TOP},   {"UIDL", POP3_VERB_UIDL},
};

int pop3_command_parse(const char *line, size_t len, struct pop3_command *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = POP3_VERB_UNKNOWN;
	cmd->args = "";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
	}
	size_t vlen = 0;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	/* RFC 2449 3: keywords are 3 or 4 characters */
	for (size_t i = 0; vlen >= 3 && vlen <= 4 && i < sizeof(pop3_verbs) / sizeof(pop3_verbs[0]);
	     i++) {
		if (strlen(pop3_verbs[i].name) == vlen &&
		    strncasecmp(pop3_verbs[i].name, line, vlen) == 0) {
			cmd->verb = pop3_verbs[i].verb;
			break;
		}
	}
	if (vlen < len) { /* line[vlen] == ' ' */
		cmd->args = line + vlen + 1;
		cmd->args_len = len - vlen - 1;
	}
	const char *p = cmd->args, *end = cmd->args + cmd->args_len;
	for (;;) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		const char *start = p;
		while (p < end && *p != ' ')
			p++;
		if (cmd->argc == POP3_ARGS_MAX) {
			cmd->argc = POP3_ARGS_MAX + 1;
			break;
		}
		cmd->argv[cmd->argc] = start;
		cmd->argl[cmd->argc] = (size_t)(p - start);
		cmd->argc++;
	}
	return 1;
}

int pop3_parse_number(const char *s, size_t len, uint32_t *r)
{
	if (len == 0 || len > 10)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0'); /* 10 digits cannot overflow 64 bits */
	}
	if (v > UINT32_MAX)
		return -1;
	*r = (uint32_t)v;
	return 1;
}

int pop3_parse_count(const char *s, size_t len, uint32_t *r)
{
	if (len == 0)
		return -1;
	uint32_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		v = v > (UINT32_MAX - d) / 10 ? UINT32_MAX : v * 10 + d; /* saturates */
	}
	*r = v;
	return 1;
}

void pop3_dotstuff_init(struct pop3_dotstuff *d)
{
	memset(d, 0, sizeof(*d));
	d->bol = true;
}

void pop3_dotstuff_feed(struct pop3_dotstuff *d, const char *data, size_t len, pop3_emit_fn *emit,
                        void *ctx)
{
	if (len == 0)
		return;
	size_t start = 0, i = 0;
	while (i < len) {
		if (d->bol && data[i] == '.') {
			/* RFC 1939 3: a line starting with the termination octet gets one more */
			if (i > start)
				emit(ctx, data + start, i - start, true);
			emit(ctx, ".", 1, false);
			start = i; /* the original '.' goes out with the next span */
		}
		const char *nl = memchr(data + i, '\n', len - i);
		if (nl == NULL) {
			d->bol = false;
			break;
		}
		i = (size_t)(nl - data) + 1;
		d->bol = true;
	}
	if (start < len)
		emit(ctx, data + start, len - start, true);
	if (len >= 2) {
		d->last[0] = data[len - 2];
		d->last[1] = data[len - 1];
	} else {
		d->last[0] = d->last[1];
		d->last[1] = data[0];
	}
	d->total += len;
}

void pop3_dotstuff_finish(struct pop3_dotstuff *d, pop3_emit_fn *emit, void *ctx)
{
	if (d->total > 0 && !(d->total >= 2 && d->last[0] == '\r' && d->last[1] == '\n'))
		emit(ctx, "\r\n", 2, false);
	emit(ctx, ".\r\n", 3, false);
}

void pop3_top_init(struct pop3_top *t, uint32_t lines)
{
	memset(t, 0, sizeof(*t));
	t->lines_left = lines;
}

size_t pop3_top_feed(struct pop3_top *t, const char *data, size_t len)
{
	size_t pos = 0;
	while (!t->done) {
		if (t->body && t->lines_left == 0) {
			t->done = true;
			break;
		}
		if (pos >= len)
			break;
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - data) : len;
		if (end > pos) {
			t->cr_only = t->linelen == 0 && end - pos == 1 && data[pos] == '\r';
			t->linelen += end - pos;
		}
		if (nl == NULL) {
			pos = len;
			break;
		}
		pos = end + 1;
		bool empty = t->linelen == 0 || t->cr_only;
		t->linelen = 0;
		t->cr_only = false;
		if (!t->body)
			t->body = empty; /* the header ends at its first empty line */
		else
			t->lines_left--;
	}
	return pos;
}

size_t pop3_top_length(const char *msg, size_t len, uint32_t lines)
{
	struct pop3_top t;
	pop3_top_init(&t, lines);
	return pop3_top_feed(&t, msg, len);
}

void pop3_reply_body_init(struct pop3_reply_body *r, bool top, uint32_t lines)
{
	memset(r, 0, sizeof(*r));
	pop3_dotstuff_init(&r->d);
	pop3_top_init(&r->t, lines);
	r->top = top;
}

size_t pop3_reply_body_feed(struct pop3_reply_body *r, const char *data, size_t len,
                            pop3_emit_fn *emit, void *ctx)
{
	if (r->done)
		return 0;
	size_t n = len;
	if (r->top) {
		n = pop3_top_feed(&r->t, data, len);
		r->done = r->t.done;
	}
	pop3_dotstuff_feed(&r->d, data, n, emit, ctx);
	return n;
}

void pop3_reply_body_finish(struct pop3_reply_body *r, pop3_emit_fn *emit, void *ctx)
{
	pop3_dotstuff_finish(&r->d, emit, ctx);
}
