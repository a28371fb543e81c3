/* Unit tests for src/smtp/smtp_parse.c: command lines, MAIL/RCPT/BDAT arguments
 * and the DATA/BDAT body reader (with every input split). */
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"
#include "unit.h"

/* ---- command lines ---- */

struct cmd_case {
	const char *in;
	enum smtp_parse_result result;
	enum smtp_verb verb;
	const char *args;
};

static const struct cmd_case cmd_cases[] = {
    {"EHLO client.example", SMTP_PARSE_OK, SMTP_VERB_EHLO, "client.example"},
    {"ehlo client.example", SMTP_PARSE_OK, SMTP_VERB_EHLO, "client.example"},
    {"HeLo x", SMTP_PARSE_OK, SMTP_VERB_HELO, "x"},
    {"EHLO", SMTP_PARSE_OK, SMTP_VERB_EHLO, ""},
    {"MAIL FROM:<a@b.c>", SMTP_PARSE_OK, SMTP_VERB_MAIL, "<a@b.c>"},
    {"mail from:<a@b.c> SIZE=5", SMTP_PARSE_OK, SMTP_VERB_MAIL, "<a@b.c> SIZE=5"},
    {"MAIL FROM: <a@b.c>", SMTP_PARSE_OK, SMTP_VERB_MAIL, "<a@b.c>"},
    {"MAIL FROM:   <>", SMTP_PARSE_OK, SMTP_VERB_MAIL, "<>"},
    {"MAIL FROM:<a@b.c>  ", SMTP_PARSE_OK, SMTP_VERB_MAIL, "<a@b.c>"},
    {"MAIL FROM:", SMTP_PARSE_OK, SMTP_VERB_MAIL, ""},
    {"MAIL TO:<a@b.c>", SMTP_PARSE_SYNTAX, SMTP_VERB_MAIL, NULL},
    {"MAIL FROM <a@b.c>", SMTP_PARSE_SYNTAX, SMTP_VERB_MAIL, NULL},
    {"MAIL", SMTP_PARSE_SYNTAX, SMTP_VERB_MAIL, NULL},
    {"MAIL  FROM:<a@b.c>", SMTP_PARSE_SYNTAX, SMTP_VERB_MAIL, NULL},
    {"RCPT TO:<a@b.c>", SMTP_PARSE_OK, SMTP_VERB_RCPT, "<a@b.c>"},
    {"Rcpt To:<a@b.c>", SMTP_PARSE_OK, SMTP_VERB_RCPT, "<a@b.c>"},
    {"RCPT FROM:<a@b.c>", SMTP_PARSE_SYNTAX, SMTP_VERB_RCPT, NULL},
    {"RCPT", SMTP_PARSE_SYNTAX, SMTP_VERB_RCPT, NULL},
    {"DATA", SMTP_PARSE_OK, SMTP_VERB_DATA, ""},
    {"data ", SMTP_PARSE_OK, SMTP_VERB_DATA, ""},
    {"DATA x", SMTP_PARSE_SYNTAX, SMTP_VERB_DATA, NULL},
    {"BDAT 100 LAST", SMTP_PARSE_OK, SMTP_VERB_BDAT, "100 LAST"},
    {"RSET", SMTP_PARSE_OK, SMTP_VERB_RSET, ""},
    {"RSET now", SMTP_PARSE_SYNTAX, SMTP_VERB_RSET, NULL},
    {"NOOP", SMTP_PARSE_OK, SMTP_VERB_NOOP, ""},
    {"NOOP anything goes", SMTP_PARSE_OK, SMTP_VERB_NOOP, "anything goes"},
    {"QUIT", SMTP_PARSE_OK, SMTP_VERB_QUIT, ""},
    {"QUIT now", SMTP_PARSE_SYNTAX, SMTP_VERB_QUIT, NULL},
    {"HELP", SMTP_PARSE_OK, SMTP_VERB_HELP, ""},
    {"HELP MAIL", SMTP_PARSE_OK, SMTP_VERB_HELP, "MAIL"},
    {"VRFY user", SMTP_PARSE_OK, SMTP_VERB_VRFY, "user"},
    {"EXPN list", SMTP_PARSE_OK, SMTP_VERB_EXPN, "list"},
    {"STARTTLS", SMTP_PARSE_OK, SMTP_VERB_STARTTLS, ""},
    {"STARTTLS x", SMTP_PARSE_SYNTAX, SMTP_VERB_STARTTLS, NULL},
    {"AUTH PLAIN AGEAYg==", SMTP_PARSE_OK, SMTP_VERB_AUTH, "PLAIN AGEAYg=="},
    /* unknown verbs */
    {"", SMTP_PARSE_OK, SMTP_VERB_UNKNOWN, ""},
    {"FOO bar", SMTP_PARSE_OK, SMTP_VERB_UNKNOWN, ""},
    {"MAILX FROM:<a@b.c>", SMTP_PARSE_OK, SMTP_VERB_UNKNOWN, ""},
    {"DATAX", SMTP_PARSE_OK, SMTP_VERB_UNKNOWN, ""},
    {" DATA", SMTP_PARSE_OK, SMTP_VERB_UNKNOWN, ""},
    {"DAT", SMTP_PARSE_OK, SMTP_VERB_UNKNOWN, ""},
    {"DATA\t", SMTP_PARSE_OK, SMTP_VERB_UNKNOWN, ""},
    /* control characters */
    {"NOOP a\tb", SMTP_PARSE_SYNTAX, SMTP_VERB_NOOP, NULL},
    {"NOOP a\rb", SMTP_PARSE_SYNTAX, SMTP_VERB_NOOP, NULL},
    {"NOOP a\nb", SMTP_PARSE_SYNTAX, SMTP_VERB_NOOP, NULL},
    {"NOOP a\x7f", SMTP_PARSE_SYNTAX, SMTP_VERB_NOOP, NULL},
};

static void test_commands(void)
{
	for (size_t i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		struct smtp_command cmd;
		const char *err = NULL;
		enum smtp_parse_result res = smtp_command_parse(c->in, strlen(c->in), &cmd, &err);
		if (res != c->result || cmd.verb != c->verb)
			fprintf(stderr, "case %zu \"%s\": got %d verb %d\n", i, c->in, res,
			        cmd.verb);
		CHECK(res == c->result);
		CHECK(cmd.verb == c->verb);
		if (res == SMTP_PARSE_OK) {
			CHECK(cmd.args_len == strlen(c->args));
			CHECK(strncmp(cmd.args, c->args, cmd.args_len) == 0);
		} else {
			CHECK(err != NULL);
		}
	}
	/* NUL inside a line (len-delimited) */
	struct smtp_command cmd;
	const char *err;
	CHECK(smtp_command_parse("NOOP a\0b", 8, &cmd, &err) == SMTP_PARSE_SYNTAX);
	CHECK(smtp_command_parse("DATA\0", 5, &cmd, &err) == SMTP_PARSE_OK);
	CHECK(cmd.verb == SMTP_VERB_UNKNOWN);
}

/* ---- MAIL ---- */

struct mail_case {
	const char *in;
	enum smtp_parse_result result;
	const char *addr;
	int has_size; /* -1: don't check */
	uint64_t size;
	int body; /* -1: don't check */
	int smtputf8;
	const char *ret, *envid, *auth;
};

#define ANY -1, 0, -1, -1, NULL, NULL, NULL

static const struct mail_case mail_cases[] = {
    {"<a@b.c>", SMTP_PARSE_OK, "a@b.c", 0, 0, SMTP_BODY_7BIT, 0, NULL, NULL, NULL},
    {"<>", SMTP_PARSE_OK, "", 0, 0, SMTP_BODY_7BIT, 0, NULL, NULL, NULL},
    {"<a@b.c> SIZE=12345", SMTP_PARSE_OK, "a@b.c", 1, 12345, -1, 0, NULL, NULL, NULL},
    {"<a@b.c> size=0", SMTP_PARSE_OK, "a@b.c", 1, 0, -1, 0, NULL, NULL, NULL},
    {"<a@b.c> SIZE=18446744073709551615", SMTP_PARSE_OK, "a@b.c", 1, UINT64_MAX, -1, 0, NULL, NULL,
     NULL},
    {"<a@b.c> SIZE=18446744073709551616", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SIZE=99999999999999999999", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SIZE=000000000000000000001", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SIZE=", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SIZE", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SIZE=-1", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SIZE=1k", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SIZE=1 SIZE=2", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> BODY=8BITMIME", SMTP_PARSE_OK, "a@b.c", 0, 0, SMTP_BODY_8BITMIME, 0, NULL, NULL,
     NULL},
    {"<a@b.c> body=binarymime", SMTP_PARSE_OK, "a@b.c", 0, 0, SMTP_BODY_BINARYMIME, 0, NULL, NULL,
     NULL},
    {"<a@b.c> BODY=7bit", SMTP_PARSE_OK, "a@b.c", 0, 0, SMTP_BODY_7BIT, 0, NULL, NULL, NULL},
    {"<a@b.c> BODY=9BIT", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> BODY=7BIT BODY=7BIT", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SMTPUTF8", SMTP_PARSE_OK, "a@b.c", 0, 0, -1, 1, NULL, NULL, NULL},
    {"<a@b.c> SMTPUTF8=yes", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SMTPUTF8 smtputf8", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> RET=full", SMTP_PARSE_OK, "a@b.c", 0, 0, -1, 0, "FULL", NULL, NULL},
    {"<a@b.c> RET=HDRS ENVID=QQ314159", SMTP_PARSE_OK, "a@b.c", 0, 0, -1, 0, "HDRS", "QQ314159",
     NULL},
    {"<a@b.c> RET=ALL", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> RET=FULL RET=FULL", SMTP_PARSE_SYNTAX, NULL, ANY},
    /* ENVID is kept as given (xtext), once checked */
    {"<a@b.c> ENVID=a+2Bb+3Dc+20d", SMTP_PARSE_OK, "a@b.c", 0, 0, -1, 0, NULL, "a+2Bb+3Dc+20d",
     NULL},
    {"<a@b.c> ENVID=a+2b", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> ENVID=a+2", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> ENVID=a+", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> ENVID=a+00", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> ENVID=a+0D+0A", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> ENVID=x ENVID=y", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> AUTH=<>", SMTP_PARSE_OK, "a@b.c", 0, 0, -1, 0, NULL, NULL, "<>"},
    {"<a@b.c> AUTH=e+2Bf@b.c", SMTP_PARSE_OK, "a@b.c", 0, 0, -1, 0, NULL, NULL, "e+f@b.c"},
    {"<a@b.c> AUTH=<> AUTH=<>", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id AUTH=<>", SMTP_PARSE_OK, "a@b.c", 1,
     10, SMTP_BODY_8BITMIME, 1, "HDRS", "id", "<>"},
    {"<a@b.c>  SIZE=10   BODY=8BITMIME", SMTP_PARSE_OK, "a@b.c", 1, 10, SMTP_BODY_8BITMIME, 0, NULL,
     NULL, NULL},
    /* unknown and malformed parameters */
    {"<a@b.c> FOO=bar", SMTP_PARSE_PARAM, NULL, ANY},
    {"<a@b.c> X-FOO", SMTP_PARSE_PARAM, NULL, ANY},
    {"<a@b.c> -FOO", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> F_O=1", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> FOO=a=b", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> =1", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c>SIZE=1", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c>x", SMTP_PARSE_SYNTAX, NULL, ANY},
    /* paths */
    {"a@b.c", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<@x.y:a@B.C>", SMTP_PARSE_OK, "a@b.c", 0, 0, -1, 0, NULL, NULL, NULL},
    {"<\"a b\"@b.c>", SMTP_PARSE_OK, "\"a b\"@b.c", 0, 0, -1, 0, NULL, NULL, NULL},
    /* UTF-8 needs SMTPUTF8 on the same command */
    {"<\xc3\xa9@b.c>", SMTP_PARSE_UTF8, NULL, ANY},
    {"<\xc3\xa9@b.c> SMTPUTF8", SMTP_PARSE_OK, "\xc3\xa9@b.c", 0, 0, -1, 1, NULL, NULL, NULL},
    {"<a@\xc3\xa9.c> SMTPUTF8", SMTP_PARSE_OK, "a@\xc3\xa9.c", 0, 0, -1, 1, NULL, NULL, NULL},
    {"<\xc3@b.c> SMTPUTF8", SMTP_PARSE_SYNTAX, NULL, ANY},
    {"<a@b.c> FOO=\xc3\xa9", SMTP_PARSE_PARAM, NULL, ANY},
    {"<a@b.c> SIZE=1\x01", SMTP_PARSE_SYNTAX, NULL, ANY},
};

static void test_mail(void)
{
	for (size_t i = 0; i < sizeof(mail_cases) / sizeof(mail_cases[0]); i++) {
		const struct mail_case *c = &mail_cases[i];
		struct smtp_mail_args a;
		const char *err = NULL;
		enum smtp_parse_result res =
		    smtp_mail_args_parse(c->in, strlen(c->in), SMTP_EXT_DSN, &a, &err);
		if (res != c->result)
			fprintf(stderr, "mail case %zu \"%s\": got %d (%s)\n", i, c->in, res,
			        err ? err : "");
		CHECK(res == c->result);
		if (res != SMTP_PARSE_OK) {
			CHECK(err != NULL);
			CHECK(a.from.addr == NULL && a.ret == NULL && a.envid == NULL &&
			      a.auth == NULL);
			continue;
		}
		CHECK_STR(a.from.addr, c->addr);
		CHECK(a.from.null == (c->addr[0] == '\0'));
		if (c->has_size >= 0) {
			CHECK(a.has_size == (c->has_size == 1));
			CHECK(a.size == c->size);
		}
		if (c->body >= 0)
			CHECK((int)a.body == c->body);
		if (c->smtputf8 >= 0)
			CHECK(a.smtputf8 == (c->smtputf8 == 1));
		if (c->ret)
			CHECK_STR(a.ret, c->ret);
		else
			CHECK(a.ret == NULL);
		if (c->envid)
			CHECK_STR(a.envid, c->envid);
		else
			CHECK(a.envid == NULL);
		if (c->auth)
			CHECK_STR(a.auth, c->auth);
		else
			CHECK(a.auth == NULL);
		smtp_mail_args_free(&a);
		CHECK(a.from.addr == NULL);
	}
	smtp_mail_args_free(NULL);
}

/* REQUIRETLS (RFC 8689 3): only when the session offers it (inside TLS), no
 * value, once. */
static void test_mail_requiretls(void)
{
	static const struct {
		const char *in;
		unsigned ext;
		enum smtp_parse_result result;
		bool requiretls;
	} cases[] = {
	    {"<a@b.c> REQUIRETLS", SMTP_EXT_DSN | SMTP_EXT_REQUIRETLS, SMTP_PARSE_OK, true},
	    {"<a@b.c> requiretls SIZE=1", SMTP_EXT_REQUIRETLS, SMTP_PARSE_OK, true},
	    {"<a@b.c>", SMTP_EXT_REQUIRETLS, SMTP_PARSE_OK, false},
	    {"<a@b.c> REQUIRETLS", SMTP_EXT_DSN, SMTP_PARSE_PARAM, false},
	    {"<a@b.c> REQUIRETLS=1", SMTP_EXT_REQUIRETLS, SMTP_PARSE_SYNTAX, false},
	    {"<a@b.c> REQUIRETLS REQUIRETLS", SMTP_EXT_REQUIRETLS, SMTP_PARSE_SYNTAX, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_mail_args a;
		const char *err = NULL;
		enum smtp_parse_result res =
		    smtp_mail_args_parse(cases[i].in, strlen(cases[i].in), cases[i].ext, &a, &err);
		CHECK(res == cases[i].result);
		if (res == SMTP_PARSE_OK) {
			CHECK(a.requiretls == cases[i].requiretls);
			smtp_mail_args_free(&a);
		}
	}
}

/* ---- RCPT ---- */

struct rcpt_case {
	const char *in;
	bool utf8_ok;
	enum smtp_parse_result result;
	const char *addr;
	const char *domain; /* "" = expect NULL */
	const char *notify, *orcpt;
};

static const struct rcpt_case rcpt_cases[] = {
    {"<u@Example.TEST>", false, SMTP_PARSE_OK, "u@example.test", "example.test", NULL, NULL},
    {"<>", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<postmaster>", false, SMTP_PARSE_OK, "postmaster", "", NULL, NULL},
    {"<PostMaster>", false, SMTP_PARSE_OK, "postmaster", "", NULL, NULL},
    {"<Postmaster> NOTIFY=NEVER", false, SMTP_PARSE_OK, "postmaster", "", "NEVER", NULL},
    {"<postmasterx>", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<postmaster>x", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<Postmaster@Example.test>", false, SMTP_PARSE_OK, "Postmaster@example.test", "example.test",
     NULL, NULL},
    {"<user>", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<@relay.example:u@x.test>", false, SMTP_PARSE_OK, "u@x.test", "x.test", NULL, NULL},
    {"<u@[IPv6:::1]>", false, SMTP_PARSE_OK, "u@[IPv6:::1]", "[IPv6:::1]", NULL, NULL},
    {"<u@x.test> NOTIFY=SUCCESS,failure,Delay", false, SMTP_PARSE_OK, "u@x.test", NULL,
     "SUCCESS,FAILURE,DELAY", NULL},
    {"<u@x.test> NOTIFY=never", false, SMTP_PARSE_OK, "u@x.test", NULL, "NEVER", NULL},
    {"<u@x.test> NOTIFY=NEVER,SUCCESS", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> NOTIFY=SUCCESS,SUCCESS", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> NOTIFY=SUCCESS,", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> NOTIFY=", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> NOTIFY=SOMETIMES", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> NOTIFY=DELAY NOTIFY=DELAY", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> ORCPT=rfc822;u+40x.test", false, SMTP_PARSE_OK, "u@x.test", NULL, NULL,
     "rfc822;u+40x.test"},
    {"<u@x.test> ORCPT=rfc822;", false, SMTP_PARSE_OK, "u@x.test", NULL, NULL, "rfc822;"},
    {"<u@x.test> ORCPT=rfc822", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> ORCPT=;u", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> ORCPT=rfc822;u+4", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> ORCPT=a;b ORCPT=a;b", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<u@x.test> SIZE=1", false, SMTP_PARSE_PARAM, NULL, NULL, NULL, NULL},
    {"<u@x.test> XFOO", false, SMTP_PARSE_PARAM, NULL, NULL, NULL, NULL},
    {"<u@x.test>XFOO", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"u@x.test", false, SMTP_PARSE_SYNTAX, NULL, NULL, NULL, NULL},
    {"<\xc3\xa9@x.test>", false, SMTP_PARSE_UTF8, NULL, NULL, NULL, NULL},
    {"<\xc3\xa9@x.test>", true, SMTP_PARSE_OK, "\xc3\xa9@x.test", "x.test", NULL, NULL},
    {"<u@x.test> XFOO=\xc3\xa9", false, SMTP_PARSE_PARAM, NULL, NULL, NULL, NULL},
};

static void test_rcpt(void)
{
	for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
		const struct rcpt_case *c = &rcpt_cases[i];
		struct smtp_rcpt_args a;
		const char *err = NULL;
		enum smtp_parse_result res =
		    smtp_rcpt_args_parse(c->in, strlen(c->in), c->utf8_ok, SMTP_EXT_DSN, &a, &err);
		if (res != c->result)
			fprintf(stderr, "rcpt case %zu \"%s\": got %d (%s)\n", i, c->in, res,
			        err ? err : "");
		CHECK(res == c->result);
		if (res != SMTP_PARSE_OK) {
			CHECK(err != NULL);
			CHECK(a.to.addr == NULL && a.notify == NULL && a.orcpt == NULL);
			continue;
		}
		CHECK_STR(a.to.addr, c->addr);
		CHECK(!a.to.null);
		if (c->domain && c->domain[0] == '\0')
			CHECK(a.to.domain == NULL);
		else if (c->domain)
			CHECK_STR(a.to.domain, c->domain);
		if (c->notify) {
			CHECK_STR(a.notify, c->notify);
			unsigned bits = 0;
			if (strstr(c->notify, "NEVER"))
				bits |= SMTP_NOTIFY_NEVER;
			if (strstr(c->notify, "SUCCESS"))
				bits |= SMTP_NOTIFY_SUCCESS;
			if (strstr(c->notify, "FAILURE"))
				bits |= SMTP_NOTIFY_FAILURE;
			if (strstr(c->notify, "DELAY"))
				bits |= SMTP_NOTIFY_DELAY;
			CHECK(a.notify_bits == bits);
		} else {
			CHECK(a.notify == NULL);
			CHECK(a.notify_bits == 0);
		}
		if (c->orcpt)
			CHECK_STR(a.orcpt, c->orcpt);
		else
			CHECK(a.orcpt == NULL);
		smtp_rcpt_args_free(&a);
	}
	smtp_rcpt_args_free(NULL);
}

/* DSN parameters only when the session advertised DSN (ext without SMTP_EXT_DSN) */
static void test_dsn_not_advertised(void)
{
	static const char *const mail_in[] = {"<a@b.c> RET=FULL", "<a@b.c> ENVID=x",
	                                      "<a@b.c> SIZE=1 ret=hdrs"};
	static const char *const rcpt_in[] = {
	    "<u@x.test> NOTIFY=NEVER", "<u@x.test> ORCPT=rfc822;u", "<postmaster> notify=SUCCESS"};
	for (size_t i = 0; i < sizeof(mail_in) / sizeof(mail_in[0]); i++) {
		struct smtp_mail_args a;
		const char *err = NULL;
		CHECK(smtp_mail_args_parse(mail_in[i], strlen(mail_in[i]), 0, &a, &err) ==
		      SMTP_PARSE_PARAM);
		CHECK_STR(err, "unsupported parameter");
		CHECK(a.from.addr == NULL && a.ret == NULL && a.envid == NULL);
	}
	for (size_t i = 0; i < sizeof(rcpt_in) / sizeof(rcpt_in[0]); i++) {
		struct smtp_rcpt_args a;
		const char *err = NULL;
		CHECK(smtp_rcpt_args_parse(rcpt_in[i], strlen(rcpt_in[i]), false, 0, &a, &err) ==
		      SMTP_PARSE_PARAM);
		CHECK_STR(err, "unsupported parameter");
		CHECK(a.to.addr == NULL && a.notify == NULL && a.orcpt == NULL &&
		      a.notify_bits == 0);
	}
	/* the other parameters do not depend on it */
	struct smtp_mail_args m;
	const char *err = NULL;
	CHECK(smtp_mail_args_parse("<a@b.c> SIZE=5 BODY=8BITMIME SMTPUTF8", 37, 0, &m, &err) ==
	      SMTP_PARSE_OK);
	CHECK(m.has_size && m.size == 5 && m.body == SMTP_BODY_8BITMIME && m.smtputf8);
	smtp_mail_args_free(&m);
}

/* ---- BDAT ---- */

static void test_bdat(void)
{
	static const struct {
		const char *in;
		enum smtp_parse_result result;
		uint64_t size;
		bool last;
	} cases[] = {
	    {"0", SMTP_PARSE_OK, 0, false},
	    {"100", SMTP_PARSE_OK, 100, false},
	    {"100 LAST", SMTP_PARSE_OK, 100, true},
	    {"100 last", SMTP_PARSE_OK, 100, true},
	    {"0 LAST", SMTP_PARSE_OK, 0, true},
	    {"100 LAST ", SMTP_PARSE_OK, 100, true},
	    {"18446744073709551615", SMTP_PARSE_OK, UINT64_MAX, false},
	    {"18446744073709551616", SMTP_PARSE_SYNTAX, 0, false},
	    {"99999999999999999999999", SMTP_PARSE_SYNTAX, 0, false},
	    {"", SMTP_PARSE_SYNTAX, 0, false},
	    {"LAST", SMTP_PARSE_SYNTAX, 0, false},
	    {"-1", SMTP_PARSE_SYNTAX, 0, false},
	    {"1x", SMTP_PARSE_SYNTAX, 0, false},
	    {"1 LASTX", SMTP_PARSE_SYNTAX, 0, false},
	    {"1  LAST", SMTP_PARSE_SYNTAX, 0, false},
	    {"1 LAST x", SMTP_PARSE_SYNTAX, 0, false},
	    {" 1", SMTP_PARSE_SYNTAX, 0, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t size = 7;
		bool last = false;
		const char *err = NULL;
		enum smtp_parse_result res =
		    smtp_bdat_args_parse(cases[i].in, strlen(cases[i].in), &size, &last, &err);
		if (res != cases[i].result)
			fprintf(stderr, "bdat case %zu \"%s\": got %d\n", i, cases[i].in, res);
		CHECK(res == cases[i].result);
		if (res == SMTP_PARSE_OK) {
			CHECK(size == cases[i].size);
			CHECK(last == cases[i].last);
		} else {
			CHECK(err != NULL);
		}
	}
}

/* ---- body reader ---- */

struct body_result {
	long consumed;
	bool done, line_too_long, too_big;
	uint64_t size;
	struct buf out;
};

/* Feeds in with the given split points (chunk sizes cycle through splits; a
 * split of 0 means all at once). DATA mode stops feeding when done. */
static void body_run(enum smtp_body_mode mode, size_t max_line, uint64_t max_size, const char *in,
                     size_t len, const size_t *splits, size_t nsplits, struct body_result *res)
{
	struct smtp_body_reader r;
	size_t pos = 0, k = 0;

	smtp_body_reader_init(&r, mode, max_line, max_size);
	buf_init(&res->out, 0);
	while (pos < len && !r.done) {
		size_t n = len - pos;
		if (nsplits > 0 && splits[k % nsplits] > 0 && splits[k % nsplits] < n)
			n = splits[k % nsplits];
		k++;
		long c = smtp_body_reader_feed(&r, in + pos, n, &res->out);
		CHECK(c >= 0 && (size_t)c <= n);
		if (c < 0)
			break;
		pos += (size_t)c;
		if (!r.done)
			CHECK((size_t)c == n);
	}
	if (mode == SMTP_BODY_MODE_BDAT)
		smtp_body_reader_finish(&r, &res->out);
	res->consumed = (long)pos;
	res->done = r.done;
	res->line_too_long = r.line_too_long;
	res->too_big = r.too_big;
	res->size = r.size;
}

static bool body_same(const struct body_result *a, const struct body_result *b)
{
	return a->consumed == b->consumed && a->done == b->done &&
	       a->line_too_long == b->line_too_long && a->too_big == b->too_big &&
	       a->size == b->size && a->out.len == b->out.len &&
	       (a->out.len == 0 || memcmp(a->out.data, b->out.data, a->out.len) == 0);
}

/* Runs in whole, 1 byte at a time, 2/3/7 byte chunks and every 2-way split;
 * checks they agree and returns the whole-input result. */
static void body_check_splits(enum smtp_body_mode mode, size_t max_line, uint64_t max_size,
                              const char *in, size_t len, struct body_result *whole)
{
	static const size_t one[] = {1}, two[] = {2}, three[] = {3}, odd[] = {1, 3, 7};
	const size_t *patterns[] = {one, two, three, odd};
	const size_t npat[] = {1, 1, 1, 3};
	body_run(mode, max_line, max_size, in, len, NULL, 0, whole);
	for (size_t p = 0; p < 4; p++) {
		struct body_result other;
		body_run(mode, max_line, max_size, in, len, patterns[p], npat[p], &other);
		CHECK(body_same(whole, &other));
		buf_free(&other.out);
	}
	for (size_t cut = 1; cut < len; cut++) {
		struct body_result other;
		size_t sp[2] = {cut, 0};
		body_run(mode, max_line, max_size, in, len, sp, 2, &other);
		if (!body_same(whole, &other))
			fprintf(stderr, "split at %zu differs for \"%.*s\"\n", cut, (int)len, in);
		CHECK(body_same(whole, &other));
		buf_free(&other.out);
	}
}

struct body_case {
	const char *in;
	const char *out;
	long consumed; /* -1: all */
	bool done;
};

static const struct body_case data_cases[] = {
    /* ordinary message: the CRLF before the dot belongs to the message */
    {"Subject: x\r\n\r\nhello\r\n.\r\n", "Subject: x\r\n\r\nhello\r\n", -1, true},
    /* empty message */
    {".\r\n", "", -1, true},
    {".\r\nMAIL FROM:<a@b.c>\r\n", "", 3, true},
    /* dot-unstuffing at line starts only */
    {"..a\r\n.\r\n", ".a\r\n", -1, true},
    {"a\r\n..\r\n.\r\n", "a\r\n.\r\n", -1, true},
    {"a.b\r\n..c\r\n.\r\n", "a.b\r\n.c\r\n", -1, true},
    {".x\r\n.\r\n", "x\r\n", -1, true},
    {"a\r\n...\r\n.\r\n", "a\r\n..\r\n", -1, true},
    /* data after the terminator is not consumed */
    {"a\r\n.\r\nQUIT\r\n", "a\r\n", 6, true},
    /* incomplete */
    {"a\r\n.\r", "a\r\n", -1, false},
    {"a\r\n.", "a\r\n", -1, false},
    {"a\r\n", "a\r\n", -1, false},
    /* bare LF and bare CR: data, stored as CRLF, never line starts */
    {"a\nb\r\n.\r\n", "a\r\nb\r\n", -1, true},
    {"a\rb\r\n.\r\n", "a\r\nb\r\n", -1, true},
    {"\r\r\n.\r\n", "\r\n\r\n", -1, true},
    {"a\n\r\n.\r\n", "a\r\n\r\n", -1, true},
    {"\n.\r\n.\r\n", "\r\n.\r\n", -1, true},
    {"a\n..\r\n.\r\n", "a\r\n..\r\n", -1, true},
    {"a\r..\r\n.\r\n", "a\r\n..\r\n", -1, true},
    {"a\r\n.\n.\r\n", "a\r\n\r\n.\r\n", -1, false},
    {"a\r\n.\rx\r\n.\r\n", "a\r\n\r\nx\r\n", -1, true},
    {"a\r\n.\r\r\n.\r\n", "a\r\n\r\n\r\n", -1, true},
    /* SMTP smuggling: none of these end the message */
    {"A\r\n\n.\nMAIL FROM:<x>\r\n.\r\n", "A\r\n\r\n.\r\nMAIL FROM:<x>\r\n", -1, true},
    {"A\r\n\r.\rMAIL FROM:<x>\r\n.\r\n", "A\r\n\r\n.\r\nMAIL FROM:<x>\r\n", -1, true},
    {"A\r\n.\nMAIL FROM:<x>\r\n.\r\n", "A\r\n\r\nMAIL FROM:<x>\r\n", -1, true},
    {"A\n.\r\nMAIL FROM:<x>\r\n.\r\n", "A\r\n.\r\nMAIL FROM:<x>\r\n", -1, true},
    {"A\n.\nMAIL FROM:<x>\r\n.\r\n", "A\r\n.\r\nMAIL FROM:<x>\r\n", -1, true},
    {"A\r.\rMAIL FROM:<x>\r\n.\r\n", "A\r\n.\r\nMAIL FROM:<x>\r\n", -1, true},
    {"A\r.\r\nMAIL FROM:<x>\r\n.\r\n", "A\r\n.\r\nMAIL FROM:<x>\r\n", -1, true},
    {"\n.\nB\r\n.\r\n", "\r\n.\r\nB\r\n", -1, true},
};

static void test_body_data(void)
{
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
		const struct body_case *c = &data_cases[i];
		size_t len = strlen(c->in);
		size_t olen = strlen(c->out);
		struct body_result res;
		body_check_splits(SMTP_BODY_MODE_DATA, 0, 0, c->in, len, &res);
		long want = c->consumed < 0 ? (long)len : c->consumed;
		if (res.consumed != want || res.done != c->done || res.out.len != olen ||
		    (olen && memcmp(res.out.data, c->out, olen) != 0))
			fprintf(stderr, "data case %zu: consumed %ld done %d out \"%.*s\"\n", i,
			        res.consumed, res.done, (int)res.out.len,
			        res.out.data ? res.out.data : "");
		CHECK(res.consumed == want);
		CHECK(res.done == c->done);
		CHECK(res.out.len == olen);
		CHECK(olen == 0 || memcmp(res.out.data, c->out, olen) == 0);
		CHECK(res.size == olen);
		CHECK(!res.too_big && !res.line_too_long);
		buf_free(&res.out);
	}
	/* NUL bytes are kept */
	struct body_result res;
	body_check_splits(SMTP_BODY_MODE_DATA, 0, 0, "a\0b\r\n.\r\n", 8, &res);
	CHECK(res.done && res.out.len == 5 && memcmp(res.out.data, "a\0b\r\n", 5) == 0);
	buf_free(&res.out);

	/* after done, feed consumes nothing */
	struct smtp_body_reader r;
	struct buf out;
	buf_init(&out, 0);
	smtp_body_reader_init(&r, SMTP_BODY_MODE_DATA, 0, 0);
	CHECK(smtp_body_reader_feed(&r, ".\r\n", 3, &out) == 3);
	CHECK(r.done);
	CHECK(smtp_body_reader_feed(&r, "x\r\n", 3, &out) == 0);
	CHECK(out.len == 0);
	buf_free(&out);
}

static const struct body_case bdat_cases[] = {
    {"a\r\nb\r\n", "a\r\nb\r\n", -1, false},
    {".\r\n", ".\r\n", -1, false},
    {"a\r\n.\r\nb", "a\r\n.\r\nb", -1, false},
    {"..x\r\n", "..x\r\n", -1, false},
    {"a\nb", "a\r\nb", -1, false},
    {"a\rb", "a\r\nb", -1, false},
    {"\r\r\n", "\r\n\r\n", -1, false},
    {"a\r", "a\r\n", -1, false}, /* finish flushes the pending CR */
    {"\n\n", "\r\n\r\n", -1, false},
    {"", "", -1, false},
};

static void test_body_bdat(void)
{
	for (size_t i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
		const struct body_case *c = &bdat_cases[i];
		size_t len = strlen(c->in), olen = strlen(c->out);
		struct body_result res;
		body_check_splits(SMTP_BODY_MODE_BDAT, 0, 0, c->in, len, &res);
		CHECK(res.consumed == (long)len);
		CHECK(!res.done);
		CHECK(res.out.len == olen);
		CHECK(olen == 0 || memcmp(res.out.data, c->out, olen) == 0);
		if (res.out.len != olen || (olen && memcmp(res.out.data, c->out, olen) != 0))
			fprintf(stderr, "bdat body case %zu: out \"%.*s\"\n", i, (int)res.out.len,
			        res.out.data ? res.out.data : "");
		buf_free(&res.out);
	}

	/* a CRLF split across two BDAT chunks stays one line end */
	struct smtp_body_reader r;
	struct buf out;
	buf_init(&out, 0);
	smtp_body_reader_init(&r, SMTP_BODY_MODE_BDAT, 0, 0);
	CHECK(smtp_body_reader_feed(&r, "a\r", 2, &out) == 2);
	CHECK(out.len == 1);
	CHECK(smtp_body_reader_feed(&r, "\nb", 2, &out) == 2);
	smtp_body_reader_finish(&r, &out);
	CHECK(out.len == 4 && memcmp(out.data, "a\r\nb", 4) == 0);
	buf_free(&out);
}

static void test_body_limits(void)
{
	struct body_result res;

	/* line length counts the stored line incl. CRLF, not the stuffing dot */
	body_check_splits(SMTP_BODY_MODE_DATA, 5, 0, "abc\r\n.\r\n", 8, &res);
	CHECK(res.done && !res.line_too_long);
	buf_free(&res.out);
	body_check_splits(SMTP_BODY_MODE_DATA, 5, 0, "abcd\r\n.\r\n", 9, &res);
	CHECK(res.done && res.line_too_long);
	CHECK(res.out.len == 6); /* still stored */
	buf_free(&res.out);
	body_check_splits(SMTP_BODY_MODE_DATA, 5, 0, "..bc\r\n.\r\n", 9, &res);
	CHECK(res.done && !res.line_too_long);
	buf_free(&res.out);
	/* bare LF ends a stored line for counting */
	body_check_splits(SMTP_BODY_MODE_DATA, 5, 0, "abc\nabc\r\n.\r\n", 12, &res);
	CHECK(res.done && !res.line_too_long);
	buf_free(&res.out);
	body_check_splits(SMTP_BODY_MODE_DATA, 5, 0, "abcdef", 6, &res);
	CHECK(!res.done && res.line_too_long);
	buf_free(&res.out);
	body_check_splits(SMTP_BODY_MODE_BDAT, 5, 0, "abc\r\nabcd\r\n", 11, &res);
	CHECK(res.line_too_long);
	buf_free(&res.out);
	/* the final line of a BDAT body has no CRLF to count */
	body_check_splits(SMTP_BODY_MODE_BDAT, 5, 0, "abc\r\nabcde", 10, &res);
	CHECK(!res.line_too_long);
	buf_free(&res.out);

	/* size: exactly max is fine, one more is too big; input is still consumed */
	body_check_splits(SMTP_BODY_MODE_DATA, 0, 5, "abc\r\n.\r\n", 8, &res);
	CHECK(res.done && !res.too_big && res.size == 5 && res.out.len == 5);
	buf_free(&res.out);
	body_check_splits(SMTP_BODY_MODE_DATA, 0, 5, "abcd\r\nefgh\r\n.\r\n", 15, &res);
	CHECK(res.done && res.too_big && res.size == 12 && res.consumed == 15);
	CHECK(res.out.len == 5 && memcmp(res.out.data, "abcd\r", 5) == 0);
	buf_free(&res.out);
	/* size counts stored bytes: bare LF grows by one */
	body_check_splits(SMTP_BODY_MODE_BDAT, 0, 4, "ab\nc", 4, &res);
	CHECK(res.too_big && res.size == 5 && res.out.len == 4);
	buf_free(&res.out);
}

/* Pseudo-random inputs from a small alphabet rich in CR, LF and '.', checked for
 * split independence in both modes. */
static void test_body_random(void)
{
	static const char alphabet[] = "\r\n.\r\n.a\0";
	unsigned long seed = 12345;
	char in[64];

	for (int iter = 0; iter < 400; iter++) {
		size_t len = (size_t)(iter % 40);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 6364136223846793005UL + 1442695040888963407UL;
			in[i] = alphabet[(seed >> 33) % (sizeof(alphabet) - 1)];
		}
		struct body_result res;
		body_check_splits(SMTP_BODY_MODE_DATA, 4, 10, in, len, &res);
		buf_free(&res.out);
		body_check_splits(SMTP_BODY_MODE_DATA, 0, 0, in, len, &res);
		/* the stored form has no bare CR or LF */
		for (size_t i = 0; i < res.out.len; i++) {
			if (res.out.data[i] == '\r')
				CHECK(i + 1 < res.out.len && res.out.data[i + 1] == '\n');
			if (res.out.data[i] == '\n')
				CHECK(i > 0 && res.out.data[i - 1] == '\r');
		}
		buf_free(&res.out);
		body_check_splits(SMTP_BODY_MODE_BDAT, 4, 10, in, len, &res);
		buf_free(&res.out);
	}
}

int main(void)
{
	test_commands();
	test_mail();
	test_mail_requiretls();
	test_rcpt();
	test_dsn_not_advertised();
	test_bdat();
	test_body_data();
	test_body_bdat();
	test_body_limits();
	test_body_random();
	return unit_finish("smtp_parse");
}
