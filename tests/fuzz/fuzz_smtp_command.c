/* libFuzzer target: one SMTP command line through smtp_command_parse and the
 * MAIL / RCPT / BDAT argument parsers. Checks that every accepted address
 * round-trips through mail_address_parse. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

static void check_address(const struct mail_address *a, bool utf8)
{
	if (a->addr == NULL)
		abort();
	if (a->null || a->domain == NULL) /* "<>" or RCPT "<postmaster>" */
		return;
	for (const char *p = a->addr; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort();
	}
	struct mail_address again;
	const char *err;
	if (mail_address_parse(a->addr, strlen(a->addr), utf8, &again, &err) != 1)
		abort();
	if (strcmp(again.addr, a->addr) != 0 || strcmp(again.domain, a->domain) != 0 ||
	    strcmp(again.local, a->local) != 0)
		abort();
	mail_address_free(&again);
}

static void args_all(const char *args, size_t len)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	const char *err;
	uint64_t size;
	bool last;

	for (unsigned ext = 0; ext <= SMTP_EXT_DSN; ext += SMTP_EXT_DSN) {
		err = NULL;
		if (smtp_mail_args_parse(args, len, ext, &m, &err) == SMTP_PARSE_OK) {
			check_address(&m.from, m.smtputf8);
			if (ext == 0 && (m.ret != NULL || m.envid != NULL))
				abort();
			smtp_mail_args_free(&m);
		} else if (err == NULL || m.from.addr != NULL) {
			abort();
		}
		for (int u = 0; u < 2; u++) {
			err = NULL;
			if (smtp_rcpt_args_parse(args, len, u, ext, &r, &err) == SMTP_PARSE_OK) {
				if (r.to.null)
					abort();
				if (ext == 0 && (r.notify != NULL || r.orcpt != NULL))
					abort();
				if ((r.notify != NULL) != (r.notify_bits != 0))
					abort();
				check_address(&r.to, u);
				smtp_rcpt_args_free(&r);
			} else if (err == NULL || r.to.addr != NULL) {
				abort();
			}
		}
	}
	(void)smtp_bdat_args_parse(args, len, &size, &last, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_command cmd;
	const char *err = NULL;
	const char *line = (const char *)data;

	if (size > SMTP_COMMAND_LINE_MAX * 2)
		return 0;
	enum smtp_parse_result res = smtp_command_parse(line, size, &cmd, &err);
	if (res == SMTP_PARSE_OK) {
		if (cmd.args_len > size)
			abort();
		if (cmd.args_len > 0 && (cmd.args < line || cmd.args + cmd.args_len > line + size))
			abort();
		if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT ||
		    cmd.verb == SMTP_VERB_BDAT)
			args_all(cmd.args, cmd.args_len);
	} else if (err == NULL) {
		abort();
	}
	/* the argument parsers also see the raw bytes, whatever the verb */
	args_all(line, size);
	return 0;
}
