/* ENVELOPE and address lists: a corpus of tricky header sections
 * (tests/unit/data/envelope/) with the exact ENVELOPE expected, and the
 * address-list parser's items, limits and garbage. Where docs/mime.md notes
 * no difference, the expected strings are what Dovecot 2.3.19 returns for
 * the same file (doveadm fetch imap.envelope), quoting style aside. */
#include "mail/addrlist.h"
#include "mail/envelope.h"
#include "mail/header.h"
#include "unit.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#ifndef ENVELOPE_DATA
#define ENVELOPE_DATA "tests/unit/data/envelope/"
#endif

static char *load(const char *name, size_t *len_r)
{
	char path[256];
	snprintf(path, sizeof(path), ENVELOPE_DATA "%s", name);
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		*len_r = 0;
		return NULL;
	}
	static char data[65536];
	*len_r = fread(data, 1, sizeof(data), f);
	fclose(f);
	return data;
}

static const struct {
	const char *file;
	bool utf8;
	const char *want;
} corpus[] = {
    {"01-basic.eml", false,
     "(\"Fri, 21 Nov 1997 09:55:06 -0600\" \"Saying Hello\" ((\"John Doe\" NIL \"jdoe\" "
     "\"machine.example\")) ((\"Secretary\" NIL \"sec\" \"machine.example\")) ((\"Mary Smith: "
     "Personal Account\" NIL \"smith\" \"home.example\")) ((\"Mary Smith\" NIL \"mary\" "
     "\"example.net\")) ((\"Who?\" NIL \"one\" \"y.test\")(NIL NIL \"three\" \"y.test\")) ((NIL "
     "NIL \"hidden\" \"y.test\")) \"<3456@example.net>\" \"<1234@local.machine.example>\")"},
    {"02-absent.eml", false,
     "(NIL NIL ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" "
     "\"b.test\")) NIL NIL NIL NIL NIL)"},
    {"03-groups.eml", false,
     "(NIL NIL ((\"Pete\" NIL \"pete\" \"silly.example\")) ((\"Pete\" NIL \"pete\" "
     "\"silly.example\")) ((\"Pete\" NIL \"pete\" \"silly.example\")) ((NIL NIL \"A Group\" "
     "NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")(\"John\" NIL "
     "\"jdoe\" \"one.test\")(NIL NIL NIL NIL)) ((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL "
     "NIL NIL)) ((NIL NIL \"x\" \"y.test\")(NIL NIL \"Empty\" NIL)(NIL NIL \"z\" \"w.test\")(NIL "
     "NIL NIL NIL)(NIL NIL \"last\" \"l.test\")) NIL NIL)"},
    {"04-comments.eml", false,
     "(NIL NIL ((\"Pete\" NIL \"pete\" \"silly.test\")) ((\"Pete\" NIL \"pete\" \"silly.test\")) "
     "((\"Pete\" NIL \"pete\" \"silly.test\")) ((\"Alice Bee\" NIL \"a\" \"b.test\")(NIL NIL \"c\" "
     "\"d.test\")) NIL NIL NIL NIL)"},
    {"05-quoted.eml", false,
     "(NIL NIL ((\"Joe \\\"Q\\\" Public\" NIL \"joe\" \"example.com\")) ((\"Joe \\\"Q\\\" Public\" "
     "NIL \"joe\" \"example.com\")) ((\"Joe \\\"Q\\\" Public\" NIL \"joe\" \"example.com\")) "
     "((\"back\\\\slash\" NIL \"b\" \"x.test\")(NIL NIL \"John Doe\" \"example.com\")(NIL NIL \"\" "
     "\"empty.test\")) ((\"a@b\" NIL \"real\" \"x.test\")(\"qx two\" NIL \"q\" \"x.test\")) NIL "
     "NIL NIL)"},
    {"06-nodomain.eml", false,
     "(NIL NIL ((NIL NIL \"user\" \"MISSING_DOMAIN\")) ((NIL NIL \"user\" \"MISSING_DOMAIN\")) "
     "((NIL NIL \"user\" \"MISSING_DOMAIN\")) ((NIL NIL \"local\" \"MISSING_DOMAIN\")(\"Name\" NIL "
     "\"nodom\" \"MISSING_DOMAIN\")(NIL NIL \"MISSING_MAILBOX\" \"only.test\")(NIL NIL "
     "\"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) ((NIL NIL \"a\" \"MISSING_DOMAIN\")(NIL NIL "
     "\"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) NIL NIL NIL)"},
    {"07-route.eml", false,
     "(NIL NIL ((NIL \"@r1.test,@r2.test\" \"u\" \"h.test\")) ((NIL \"@r1.test,@r2.test\" \"u\" "
     "\"h.test\")) ((NIL \"@r1.test,@r2.test\" \"u\" \"h.test\")) ((\"Mary Smith\" \"@node.test\" "
     "\"mary\" \"example.net\")) ((NIL \"@a.test,@b.test\" \"x\" \"c.test\")) NIL NIL NIL)"},
    {"08-encoded.eml", false,
     "(NIL \"=?ISO-8859-1?Q?Andr=E9?= Pirard\" ((\"=?US-ASCII?Q?Keith_Moore?=\" NIL \"moore\" "
     "\"cs.utk.edu\")) ((\"=?US-ASCII?Q?Keith_Moore?=\" NIL \"moore\" \"cs.utk.edu\")) "
     "((\"=?US-ASCII?Q?Keith_Moore?=\" NIL \"moore\" \"cs.utk.edu\")) "
     "((\"=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=\" NIL \"keld\" \"dkuug.dk\")) NIL NIL NIL NIL)"},
    {"09-8bit.eml", false,
     "(NIL {13}\r\nh\xc3"
     "\xa9"
     "llo w\xc3"
     "\xb6"
     "rld (({9}\r\nJ\xc3"
     "\xb6"
     "hn D\xc5"
     "\x93"
     " NIL {5}\r\nj\xc3"
     "\xb6"
     "hn {13}\r\nex\xc3"
     "\xa4"
     "mple.test)) (({9}\r\nJ\xc3"
     "\xb6"
     "hn D\xc5"
     "\x93"
     " NIL {5}\r\nj\xc3"
     "\xb6"
     "hn {13}\r\nex\xc3"
     "\xa4"
     "mple.test)) (({9}\r\nJ\xc3"
     "\xb6"
     "hn D\xc5"
     "\x93"
     " NIL {5}\r\nj\xc3"
     "\xb6"
     "hn {13}\r\nex\xc3"
     "\xa4"
     "mple.test)) (({6}\r\n\xe6"
     "\x97"
     "\xa5"
     "\xe6"
     "\x9c"
     "\xac"
     " NIL \"a\" \"b.test\")) NIL NIL NIL NIL)"},
    {"09-8bit.eml", true,
     "(NIL \"h\xc3"
     "\xa9"
     "llo w\xc3"
     "\xb6"
     "rld\" ((\"J\xc3"
     "\xb6"
     "hn D\xc5"
     "\x93"
     "\" NIL \"j\xc3"
     "\xb6"
     "hn\" \"ex\xc3"
     "\xa4"
     "mple.test\")) ((\"J\xc3"
     "\xb6"
     "hn D\xc5"
     "\x93"
     "\" NIL \"j\xc3"
     "\xb6"
     "hn\" \"ex\xc3"
     "\xa4"
     "mple.test\")) ((\"J\xc3"
     "\xb6"
     "hn D\xc5"
     "\x93"
     "\" NIL \"j\xc3"
     "\xb6"
     "hn\" \"ex\xc3"
     "\xa4"
     "mple.test\")) ((\"\xe6"
     "\x97"
     "\xa5"
     "\xe6"
     "\x9c"
     "\xac"
     "\" NIL \"a\" \"b.test\")) NIL NIL NIL NIL)"},
    {"10-folded.eml", false,
     "(\"Fri, 21 Nov 1997 09:55:06 -0600\" \"This is a folded subject\" ((\"Long Name\" NIL "
     "\"long\" \"x.test\")(NIL NIL \"other\" \"x.test\")) ((\"Long Name\" NIL \"long\" "
     "\"x.test\")(NIL NIL \"other\" \"x.test\")) ((\"Long Name\" NIL \"long\" \"x.test\")(NIL NIL "
     "\"other\" \"x.test\")) NIL NIL NIL NIL NIL)"},
    {"11-duplicate.eml", false,
     "(NIL \"first\" ((NIL NIL \"one\" \"x.test\")) ((NIL NIL \"one\" \"x.test\")) ((NIL NIL "
     "\"one\" \"x.test\")) NIL NIL NIL NIL \"<a@x>\")"},
    {"12-ids.eml", false,
     "(NIL NIL ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" "
     "\"b.test\")) NIL NIL NIL \"<a@x.test> (comment) <b@x.test>\" \"<id@x.test>\")"},
    {"13-empty.eml", false,
     "(\"\" \"\" ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" "
     "\"b.test\")) NIL NIL NIL NIL NIL)"},
    {"14-garbage.eml", false,
     "(NIL NIL ((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) ((NIL NIL \"MISSING_MAILBOX\" "
     "\"MISSING_DOMAIN\")) ((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")) ((NIL NIL "
     "\"unterminated\" \"MISSING_DOMAIN\")) NIL ((NIL NIL \"MISSING_MAILBOX\" "
     "\"MISSING_DOMAIN\")(NIL NIL \"x\" \"y.test\")) NIL NIL)"},
    {"15-obs.eml", false,
     "(NIL \"obsolete colon\" ((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) ((\"Joe "
     "Q. Public\" NIL \"john.q.public\" \"example.com\")) ((\"Joe Q. Public\" NIL "
     "\"john.q.public\" \"example.com\")) ((NIL NIL \"john.q.public\" \"example.com\")(\"Mary "
     "Smith\" \"@node.test\" \"mary\" \"example.net\")(NIL NIL \"jdoe\" \"test.example\")) NIL NIL "
     "NIL NIL)"},
    {"16-lf.eml", false,
     "(NIL \"lf only\" ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" "
     "\"b.test\")) ((NIL NIL \"c\" \"d.test\")) NIL NIL NIL NIL)"},
    {"17-literal.eml", false,
     "(NIL NIL ((NIL NIL \"a\" \"[192.0.2.1]\")(NIL NIL \"b\" \"[IPv6:2001:db8::1]\")) ((NIL NIL "
     "\"a\" \"[192.0.2.1]\")(NIL NIL \"b\" \"[IPv6:2001:db8::1]\")) ((NIL NIL \"a\" "
     "\"[192.0.2.1]\")(NIL NIL \"b\" \"[IPv6:2001:db8::1]\")) ((NIL NIL \"G\" NIL)(NIL NIL \"a\" "
     "\"b.test\")(NIL NIL NIL NIL)) NIL NIL NIL NIL)"},
    {"18-nocolonend.eml", false,
     "(NIL \"no body\" ((NIL NIL \"x\" \"y.test\")) ((NIL NIL \"x\" \"y.test\")) ((NIL NIL \"x\" "
     "\"y.test\")) NIL NIL NIL NIL NIL)"},
    {"19-case.eml", false,
     "(NIL \"lower\" ((NIL NIL \"up\" \"x.test\")) ((NIL NIL \"up\" \"x.test\")) ((NIL NIL \"rt\" "
     "\"x.test\")) NIL NIL NIL NIL NIL)"},
    {"20-nested.eml", false,
     "(NIL NIL ((NIL NIL \"G\" NIL)(NIL NIL NIL NIL)) ((NIL NIL \"G\" NIL)(NIL NIL NIL NIL)) ((NIL "
     "NIL \"G\" NIL)(NIL NIL NIL NIL)) ((NIL NIL \"Outer\" NIL)(NIL NIL \"a\" \"b.test\")(NIL NIL "
     "\"c\" \"d.test\")(NIL NIL NIL NIL)(NIL NIL \"e\" \"f.test\")) NIL NIL NIL NIL)"},
    {"21-blanks.eml", false,
     "(\"Fri,  21 Nov\t1997 09:55:06\" \"a b c\" ((\"x y z\" NIL \"a\" \"b.test\")(\"Joe \\\"Q\\\" "
     "Public\" NIL \"j\" \"x.test\")(\"back\\\\slash\" NIL \"b\" \"x.test\")) ((\"x y z\" NIL "
     "\"a\" \"b.test\")(\"Joe \\\"Q\\\" Public\" NIL \"j\" \"x.test\")(\"back\\\\slash\" NIL \"b\" "
     "\"x.test\")) ((\"x y z\" NIL \"a\" \"b.test\")(\"Joe \\\"Q\\\" Public\" NIL \"j\" "
     "\"x.test\")(\"back\\\\slash\" NIL \"b\" \"x.test\")) ((NIL NIL \"e\" \"x.test\")(NIL NIL \"G "
     "H\" NIL)(NIL NIL \"a\" \"b.test\")(NIL NIL NIL NIL)) NIL NIL NIL \"<a\tb>\")"},
};

static void test_corpus(void)
{
	for (size_t k = 0; k < sizeof(corpus) / sizeof(corpus[0]); k++) {
		size_t len;
		char *msg = load(corpus[k].file, &len);
		CHECK(msg != NULL);
		if (msg == NULL)
			continue;
		struct buf b;
		buf_init(&b, 0);
		/* the section as mail_header_section_len gives it, and the whole
		 * message: reading stops at the empty line either way */
		CHECK(mail_envelope_imap(msg, mail_header_section_len(msg, len), corpus[k].utf8,
		                         &b) == 1);
		if (b.data == NULL || strcmp(b.data, corpus[k].want) != 0)
			fprintf(stderr, "corpus %s\n", corpus[k].file);
		CHECK_STR(b.data, corpus[k].want);
		buf_reset(&b);
		CHECK(mail_envelope_imap(msg, len, corpus[k].utf8, &b) == 1);
		CHECK_STR(b.data, corpus[k].want);
		buf_free(&b);
	}
}

static void check_env(const char *hdr, size_t len, bool utf8, const char *want)
{
	struct buf b;
	buf_init(&b, 0);
	CHECK(mail_envelope_imap(hdr, len, utf8, &b) == 1);
	CHECK_STR(b.data, want);
	buf_free(&b);
}
#define ENV(h, utf8, want) check_env(h, sizeof(h) - 1, utf8, want)

static void test_envelope_cases(void)
{
	/* nothing at all */
	check_env("", 0, false, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	ENV("\r\nSubject: in the body\r\n", false, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* invalid UTF-8 and Latin-1 octets: a literal even with utf8 */
	ENV("Subject: caf\xe9\r\n", true, "(NIL {4}\r\ncaf\xe9 NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* NUL octets are left out; a bare CR is unfolded away */
	ENV("Subject: a\0b\rc\r\n", false, "(NIL \"abc\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* quoted specials escaped */
	ENV("Subject: say \"hi\" \\o/\r\n", false,
	    "(NIL \"say \\\"hi\\\" \\\\o/\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* a line without a colon is skipped, so is a continuation line first */
	ENV(" folded first\r\nnot a field\r\nSubject: s\r\n", false,
	    "(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* field names are whole: Subjects: and X-Subject: are other fields */
	ENV("Subjects: no\r\nX-Subject: no\r\nSubject: yes\r\n", false,
	    "(NIL \"yes\" NIL NIL NIL NIL NIL NIL NIL NIL)");
	/* Sender present with addresses wins over From; Reply-To empty: from */
	ENV("From: a@b.test\r\nSender: s@b.test\r\nReply-To: (none)\r\n", false,
	    "(NIL NIL ((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"s\" \"b.test\")) "
	    "((NIL NIL \"a\" \"b.test\")) NIL NIL NIL NIL NIL)");
	/* no From: sender and reply-to stay NIL */
	ENV("Sender: s@b.test\r\n", false,
	    "(NIL NIL NIL ((NIL NIL \"s\" \"b.test\")) NIL NIL NIL NIL NIL NIL)");
	/* a group's name with 8-bit octets, not utf8: literal */
	ENV("To: \xc3\xa9quipe: a@b.test;\r\n", false,
	    "(NIL NIL NIL NIL NIL ((NIL NIL {7}\r\n\xc3\xa9quipe NIL)(NIL NIL \"a\" \"b.test\")"
	    "(NIL NIL NIL NIL)) NIL NIL NIL NIL)");
}

/* ---- address lists ---- */

/* Renders the items as "name|route|mailbox|host" with "-" for absent,
 * "{" and "}" for group start ({name) and end, separated by ", ". */
static void render(const struct mail_addrlist *l, struct buf *out)
{
	for (unsigned k = 0; k < l->n; k++) {
		const struct mail_addr *a = &l->items[k];
		if (k > 0)
			buf_append_str(out, ", ");
		if (a->kind == MAIL_ADDR_GROUP_END) {
			buf_append_str(out, "}");
			continue;
		}
		if (a->kind == MAIL_ADDR_GROUP_START) {
			const char *s = mail_addrlist_str(l, a->name, NULL);
			buf_printf(out, "{%s", s ? s : "(null)");
			continue;
		}
		const struct mail_addr_str f[4] = {a->name, a->route, a->mailbox, a->host};
		for (int j = 0; j < 4; j++) {
			size_t len;
			const char *s = mail_addrlist_str(l, f[j], &len);
			if (j > 0)
				buf_append_str(out, "|");
			if (s == NULL)
				buf_append_str(out, "-");
			else
				buf_append(out, s, len);
		}
	}
}

static void check_list(const char *v, const char *want)
{
	struct mail_addrlist l;
	mail_addrlist_init(&l);
	CHECK(mail_addrlist_parse(v, strlen(v), NULL, &l) == 1);
	CHECK(!l.truncated);
	struct buf b;
	buf_init(&b, 0);
	render(&l, &b);
	CHECK_STR(b.len ? b.data : "", want);
	buf_free(&b);
	mail_addrlist_free(&l);
}

static void test_addrlist(void)
{
	check_list("", "");
	check_list(" , ,, (c) ", "");
	check_list("a@b", "-|-|a|b");
	check_list("Joe <j@x>", "Joe|-|j|x");
	check_list("j@x (Joe)", "Joe|-|j|x");
	check_list("<j@x> (Joe)", "Joe|-|j|x");
	check_list("(lead) j@x", "-|-|j|x");
	check_list("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
	           "Pete|-|pete|silly.test");
	check_list("\"a\\\"b\" <x@y>", "a\"b|-|x|y");
	check_list("\"\" <x@y>", "-|-|x|y");
	check_list("\"x y\"@z", "-|-|x y|z");
	check_list("a . b @ c . d", "-|-|a.b|c.d");
	check_list("Joe Q. Public <j@x>", "Joe Q. Public|-|j|x");
	check_list("=?utf-8?q?J=C3=B6?= <j@x>", "=?utf-8?q?J=C3=B6?=|-|j|x");
	check_list("<@a,@b:u@h>", "-|@a,@b|u|h");
	check_list("<@a, ,@b : u@h>", "-|@a,@b|u|h");
	check_list("<@only>", "-|-|-|only");
	check_list("<>", "-|-|-|-");
	check_list("user", "-|-|user|-");
	check_list("Joe Public", "Joe Public|-|-|-");
	check_list("a@", "-|-|a|-");
	check_list("@d", "-|-|-|d");
	check_list("a@[1.2.3.4]", "-|-|a|[1.2.3.4]");
	check_list("a@[1.2, b@c", "-|-|a|[1.2, -|-|b|c");
	check_list("G: a@b, c@d;", "{G, -|-|a|b, -|-|c|d, }");
	check_list("G:;", "{G, }");
	check_list("G: a@b", "{G, -|-|a|b, }");
	check_list("A: x@y, B: z@w; q@r;", "{A, -|-|x|y, -|-|z|w, }, -|-|q|r");
	check_list(";; : a@b ;", "-|-|a|b");
	check_list("a@b c@d, e@f", "-|-|a|b, -|-|e|f");
	check_list("\"unterminated", "-|-|unterminated|-");
	check_list("(unterminated a@b", "");
	check_list("<a@b", "-|-|a|b");
	check_list(">>a@b]]", "-|-|a|b");
	check_list("J\xc3\xb6rg <j\xc3\xb6@\xc3\xa9x.test>",
	           "J\xc3\xb6rg|-|j\xc3\xb6|\xc3\xa9x.test");
	check_list("A\r\n B <a@b>,\r\n\tc@d", "A B|-|a|b, -|-|c|d");
	/* quoted-pairs outside quotes (invalid, but written) */
	check_list("Joe \\\"Q\\\" Public <j@x>", "Joe \"Q\" Public|-|j|x");
	check_list("back\\\\slash <b@x>", "back\\slash|-|b|x");
	check_list("a@b \\", "-|-|a|b");
	/* an empty quoted phrase: no name, and the comment does not name it */
	check_list("\"\" <x@y> (c)", "-|-|x|y");
}

static void test_addrlist_limits(void)
{
	/* 3000 addresses, default limit 1000 items */
	struct buf v;
	buf_init(&v, 0);
	for (int k = 0; k < 3000; k++)
		buf_printf(&v, "%sa%d@b", k ? ", " : "", k);
	struct mail_addrlist l;
	mail_addrlist_init(&l);
	CHECK(mail_addrlist_parse(v.data, v.len, NULL, &l) == 1);
	CHECK(l.n == 1000);
	CHECK(l.truncated);
	CHECK_STR(mail_addrlist_str(&l, l.items[999].mailbox, NULL), "a999");
	mail_addrlist_free(&l);

	/* a group open at the limit still ends */
	struct mail_addrlist_limits lim = {.max_items = 4, .max_string = 8};
	const char *g = "G: a@b, c@d, e@f, g@h;";
	mail_addrlist_init(&l);
	CHECK(mail_addrlist_parse(g, strlen(g), &lim, &l) == 1);
	CHECK(l.n == 4);
	CHECK(l.truncated);
	CHECK(l.items[0].kind == MAIL_ADDR_GROUP_START);
	CHECK(l.items[3].kind == MAIL_ADDR_GROUP_END);
	mail_addrlist_free(&l);

	/* strings cut at max_string, at a character boundary */
	const char *s = "\"abcdefg\xc3\xa9xyz\" <abcdefghijk@example.test>";
	mail_addrlist_init(&l);
	CHECK(mail_addrlist_parse(s, strlen(s), &lim, &l) == 1);
	CHECK(l.n == 1 && l.truncated);
	CHECK_STR(mail_addrlist_str(&l, l.items[0].name, NULL), "abcdefg");
	CHECK_STR(mail_addrlist_str(&l, l.items[0].mailbox, NULL), "abcdefgh");
	CHECK_STR(mail_addrlist_str(&l, l.items[0].host, NULL), "example.");
	/* a second parse appends; the limit counts every item */
	CHECK(mail_addrlist_parse("x@y, z@w, q@r, s@t", 18, &lim, &l) == 1);
	CHECK(l.n == 4);
	mail_addrlist_free(&l);

	/* many comments and quotes nested deep: no recursion, linear */
	buf_reset(&v);
	for (int k = 0; k < 100000; k++)
		buf_append(&v, "(", 1);
	buf_append_str(&v, "a@b");
	mail_addrlist_init(&l);
	CHECK(mail_addrlist_parse(v.data, v.len, NULL, &l) == 1);
	CHECK(l.n == 0);
	mail_addrlist_free(&l);
	buf_free(&v);
}

int main(void)
{
	test_corpus();
	test_envelope_cases();
	test_addrlist();
	test_addrlist_limits();
	return unit_finish("envelope");
}
