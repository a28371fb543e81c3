/* libFuzzer target: FETCH attribute lists through imap_fetch_compile, fed what
 * the command parser makes of "a FETCH 1 <input>" (literals of the input given
 * to the parser as the session would). Checks: a refusal has a one-line static
 * text and no result; a compiled list answers its accessors consistently; and
 * the response for a few stored messages (a store in a temporary directory, made
 * once) is the same written in one call as in pieces of a small budget, and
 * ends with ")\r\n". The first input byte picks UID FETCH, UTF-8 and the budget. */
#include <event2/buffer.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "imap/imap_fetch.h"
#include "imap/imap_parse.h"
#include "store/store.h"

static struct store *st;
static char blob_ids[3][80];
static char data_dir[] = "/tmp/hermod-fuzz-fetch.XXXXXX";

static const char *const corpus[] = {
    "From: a@example.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    "Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "a=3Db =\r\nc\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: in@example.test\r\n"
    "Subject: in\r\n\r\ninner\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    "AAECaGk=\r\n--b\r\nContent-Transfer-Encoding: x-unknown\r\n\r\n?\r\n--b--\r\n",
    "Subject: bare\n folded\nX: y\n\nbody\n",
    "Subject: no body",
};

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	store_close(&st);
	nftw(data_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void list_cb(void *ctx, const struct store_message_info *m)
{
	if (m->uid >= 1 && m->uid <= 3)
		snprintf(blob_ids[m->uid - 1], sizeof(blob_ids[0]), "%s", m->blob_id);
}

static void setup(void)
{
	if (mkdtemp(data_dir) == NULL)
		abort();
	struct store_options opts = {.data_dir = data_dir, .fsync = false};
	if (store_open(&opts, &st, NULL) != 1 || store_domain_add(st, "example.test", NULL) != 1 ||
	    store_account_add(st, "u@example.test", "x", NULL) != 1)
		abort();
	const char *accts[] = {"u@example.test"};
	for (size_t i = 0; i < 3; i++) {
		struct store_delivery d = {
		    .accounts = accts, .naccounts = 1, .data = corpus[i], .len = strlen(corpus[i])};
		uint32_t uid;
		if (store_deliver(st, &d, &uid, NULL) != 1)
			abort();
	}
	if (store_message_list(st, "u@example.test", "INBOX", list_cb, NULL, NULL) != 1)
		abort();
	atexit(cleanup);
}

/* The response for message i with the given budget: malloc'd, *len_r; NULL when
 * it failed (UNKNOWN-CTE, which must fail the same way every time). */
static char *respond(const struct imap_fetch *f, size_t i, bool utf8, size_t budget, int *rc_r,
                     size_t *len_r)
{
	struct imap_fetch_item it = {.seq = (uint32_t)i + 1,
	                             .uid = (uint32_t)i + 1,
	                             .modseq = 7,
	                             .size = strlen(corpus[i]),
	                             .internal_date = 1764633600,
	                             .flags = "\\Seen $x",
	                             .blob_id = blob_ids[i]};
	struct imap_fetch_cursor *cur = NULL;
	struct evbuffer *out = evbuffer_new();
	char *error = NULL;
	int r;
	unsigned calls = 0;
	do {
		r = imap_fetch_write(f, st, &it, utf8, &cur, out, budget, &error);
		if (++calls > 1000000)
			abort();
	} while (r == 0);
	if ((r == 1) != (cur == NULL && error == NULL) || (r != 1 && cur != NULL))
		abort();
	free(error);
	*rc_r = r;
	*len_r = evbuffer_get_length(out);
	char *s = malloc(*len_r + 1);
	evbuffer_remove(out, s, *len_r);
	evbuffer_free(out);
	return s;
}

static void check(const struct imap_fetch *f, bool utf8, size_t budget)
{
	for (size_t i = 0; i < 3; i++) {
		int r1, r2;
		size_t n1, n2;
		char *one = respond(f, i, utf8, SIZE_MAX, &r1, &n1);
		char *many = respond(f, i, utf8, budget, &r2, &n2);
		if (r1 != r2 || n1 != n2 || memcmp(one, many, n1) != 0)
			abort();
		if (r1 == 1 && (n1 < 3 || memcmp(one + n1 - 3, ")\r\n", 3) != 0))
			abort();
		if (r1 == IMAP_FETCH_UNKNOWN_CTE && n1 != 0)
			abort();
		/* nothing else fails on these messages */
		if (r1 != 1 && r1 != IMAP_FETCH_UNKNOWN_CTE)
			abort();
		free(one);
		free(many);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	if (st == NULL)
		setup();
	uint8_t mode = data[0];
	bool uid = mode & 1, utf8 = mode & 2;
	size_t budget = 1 + (mode >> 2);
	struct imap_parser *p = imap_parser_new(NULL, NULL);
	if (p == NULL)
		abort();
	imap_parser_set_authenticated(p, true);
	/* the first line: "a [UID ]FETCH 1 " and the input up to a newline */
	const char *in = (const char *)data + 1;
	size_t len = size - 1, pos = 0;
	const char *eol = memchr(in, '\n', len);
	size_t l = eol ? (size_t)(eol - in) : len;
	if (l > 0 && in[l - 1] == '\r')
		l--;
	char line[8192];
	int n = snprintf(line, sizeof(line), "a %sFETCH 1 ", uid ? "UID " : "");
	memcpy(line + n, in, l);
	int r = imap_parser_feed_line(p, line, (size_t)n + l);
	pos = eol ? (size_t)(eol - in) + 1 : len;
	while (r == IMAP_PARSE_NEED_LITERAL) {
		uint64_t want = imap_parser_literal(p)->size;
		if (want > len - pos)
			goto out;
		size_t used;
		r = imap_parser_feed_literal(p, in + pos, (size_t)want, &used);
		pos += used;
		if (r != IMAP_PARSE_NEED_LINE)
			goto out;
		eol = memchr(in + pos, '\n', len - pos);
		l = eol ? (size_t)(eol - (in + pos)) : len - pos;
		size_t next = eol ? pos + l + 1 : len;
		if (l > 0 && in[pos + l - 1] == '\r')
			l--;
		r = imap_parser_feed_line(p, in + pos, l);
		pos = next;
	}
	if (r != IMAP_PARSE_COMMAND)
		goto out;
	const struct imap_command *c = imap_parser_command(p);
	struct imap_fetch *f = (struct imap_fetch *)&f;
	const char *error = NULL;
	r = imap_fetch_compile(c->args, 1, c->nargs, uid, &f, &error);
	if (r == -1) {
		if (f != NULL || error == NULL || error[0] == '\0' || strpbrk(error, "\r\n"))
			abort();
		goto out;
	}
	if (r != 1 || f == NULL)
		abort();
	if (imap_fetch_vanished(f) && !uid)
		abort();
	if (imap_fetch_changedsince(f) != 0 && !imap_fetch_wants_modseq(f))
		abort();
	check(f, utf8, budget);
	imap_fetch_free(&f);
	if (f != NULL)
		abort();
out:
	imap_parser_free(&p);
	return 0;
}
