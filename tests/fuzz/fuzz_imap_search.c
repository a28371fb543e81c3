/* libFuzzer target: SEARCH programs through the command parser and then
 * imap_search_compile, checking its invariants: a failure names a static error
 * (and only BADCHARSET as a code) and leaves no program; a compiled program
 * evaluates every key without error for hand-made messages (text keys aside)
 * and writes a reply that is one CRLF-terminated line. The first input byte
 * picks the UID flag and IMAP4rev2; with bit 4 set the input is one program
 * line and then a message, which is delivered to a throw-away store and
 * searched with the program's text keys (header fields, decoders, matchers). */
#include <event2/buffer.h>
#include <ftw.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_parse.h"
#include "imap/imap_search.h"
#include "store/store.h"

static struct store *fuzz_store;
static char fuzz_dir[] = "/tmp/hermod-fuzz-search.XXXXXX";

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(path);
}

static void fuzz_cleanup(void)
{
	store_close(&fuzz_store);
	nftw(fuzz_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

struct found {
	uint32_t uid;
	char blob_id[80];
};

static void blob_cb(void *ctx, const struct store_message_info *m)
{
	struct found *f = ctx;
	if (m->uid == f->uid)
		snprintf(f->blob_id, sizeof(f->blob_id), "%s", m->blob_id);
}

/* Delivers msg to the throw-away store: 1 with the blob id, else 0. */
static int deliver(const char *msg, size_t len, uint32_t *uid_r, char *blob_id, size_t size)
{
	if (fuzz_store == NULL) {
		struct store_options opts = {.data_dir = fuzz_dir, .fsync = false};
		if (mkdtemp(fuzz_dir) == NULL || store_open(&opts, &fuzz_store, NULL) != 1 ||
		    store_domain_add(fuzz_store, "fuzz.test", NULL) != 1 ||
		    store_account_add(fuzz_store, "u@fuzz.test", "x", NULL) != 1)
			abort();
		atexit(fuzz_cleanup);
	}
	const char *accts[] = {"u@fuzz.test"};
	struct store_delivery d = {
	    .accounts = accts, .naccounts = 1, .data = msg, .len = len, .internal_date = 1};
	if (store_deliver(fuzz_store, &d, uid_r, NULL) != 1)
		return 0;
	struct found f = {.uid = *uid_r};
	if (store_message_list(fuzz_store, "u@fuzz.test", "INBOX", blob_cb, &f, NULL) != 1)
		abort();
	snprintf(blob_id, size, "%s", f.blob_id);
	return blob_id[0] != '\0';
}

static void check_text(const struct imap_command *c, const char *msg, size_t len)
{
	struct imap_search *s = NULL;
	const char *code = NULL, *err = NULL;
	if (imap_search_compile(c->args, 0, c->nargs, &s, &code, &err) != 1)
		return;
	uint32_t uid;
	char blob_id[80];
	if (imap_search_needs_msg(s) && deliver(msg, len, &uid, blob_id, sizeof(blob_id))) {
		struct imap_search_ctx ctx = {1, uid, NULL, 0};
		struct imap_search_item it = {1, uid, 1, len, 1, "", blob_id};
		char *error = NULL;
		int rc = imap_search_match(s, &ctx, fuzz_store, &it, &error);
		if (rc != 0 && rc != 1)
			abort();
		free(error);
		if (store_message_expunge(fuzz_store, "u@fuzz.test", "INBOX", &uid, 1, NULL) != 1)
			abort();
	}
	imap_search_free(&s);
}

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
	if (mode & 4) {
		/* one program line, then the message */
		const char *eol = memchr(in, '\n', len);
		size_t l = eol ? (size_t)(eol - in) : len;
		char *line = malloc(sizeof(prefix) + l);
		if (line == NULL)
			abort();
		memcpy(line, prefix, sizeof(prefix) - 1);
		memcpy(line + sizeof(prefix) - 1, in, l);
		if (imap_parser_feed_line(p, line, sizeof(prefix) - 1 + l) == IMAP_PARSE_COMMAND)
			check_text(imap_parser_command(p), eol ? eol + 1 : in + len,
			           eol ? len - l - 1 : 0);
		free(line);
		imap_parser_free(&p);
		return 0;
	}
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
