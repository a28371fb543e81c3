/* The admin CLI: domain, user, alias, mailbox, message, queue, dns, mta-sts, tls-report and
 * dkim subcommands (documented for admins in docs/cli.md).
 *
 * Arguments are checked before the config is read, so a typo gets a usage error
 * (exit 2) even on a machine without a config; runtime failures exit 1. Every
 * failure is exactly one line on stderr starting with "hermod: ". Successful
 * add/del/passwd commands print nothing (scriptable, like useradd). */
#include "cli/cli.h"
#include "cli/cli_dns.h"
#include "cli/cli_mta_sts.h"
#include "cli/cli_tlsrpt.h"

#include "auth/password.h"
#include "auth/sasl.h"
#include "core/config.h"
#include "delivery/mta_sts.h"
#include "delivery/tlsrpt.h"
#include "dns/dns.h"
#include "mail/address.h"
#include "policy/dkim_sign.h"
#include "store/store.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define CLI_PASSWORD_MAX 1024
#define CLI_ARGS_MAX 8
#define CLI_SUBJECT_SCAN_MAX (256 * 1024) /* header bytes scanned for Subject: */

struct cli {
	const char *cmd;    /* "domain", ... */
	const char *action; /* "add", ...; NULL if none given */
	const char *args[CLI_ARGS_MAX];
	int nargs;
	const char *config_path; /* -c FILE, or NULL */
	bool password_stdin;
	const char *hash;      /* --hash: an existing crypt(3) hash to store as-is */
	const char *selector;  /* dkim keygen --selector */
	const char *algorithm; /* dkim keygen --algorithm */

	struct config *cfg;
	struct store *st;
};

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("hermod: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static int fail_store(char *error, const char *fallback)
{
	int ret = fail(CLI_EXIT_ERROR, "%s", error != NULL ? error : fallback);
	free(error);
	return ret;
}

static const struct {
	const char *cmd, *usage;
} usages[] = {
    {"domain", "hermod domain add|del|list [DOMAIN] [-c FILE]"},
    {"user", "hermod user add|del|list|passwd [ADDRESS] [--password-stdin | --hash HASH] "
             "[-c FILE]"},
    {"alias", "hermod alias add|del|list [SOURCE [TARGET]] [-c FILE]"},
    {"mailbox", "hermod mailbox list ADDRESS [-c FILE]"},
    {"message", "hermod message list ADDRESS [MAILBOX] | show ADDRESS MAILBOX UID [-c FILE]"},
    {"queue", "hermod queue list | show ID | flush [ID] | delete|hold|release|bounce ID "
              "[-c FILE]"},
    {"dns", "hermod dns lookup TYPE NAME [-c FILE]"},
    {"mta-sts", "hermod mta-sts lookup DOMAIN [-c FILE]"},
    {"tls-report", "hermod tls-report list | send [BEFORE] [-c FILE]"},
    {"dkim", "hermod dkim keygen DOMAIN [--selector S --algorithm rsa|ed25519] | list "
             "[-c FILE]"},
};

static const char *usage_of(const char *cmd)
{
	for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++) {
		if (strcmp(usages[i].cmd, cmd) == 0)
			return usages[i].usage;
	}
	return NULL;
}

int cli_handles(const char *subcommand)
{
	return subcommand != NULL && usage_of(subcommand) != NULL;
}

static int usage(const struct cli *c)
{
	return fail(CLI_EXIT_USAGE, "usage: %s", usage_of(c->cmd));
}

/* ---- argument checks ---- */

/* Normalizes an account or alias-target address into *addr_r (malloc'd, domain
 * lower-cased). Returns 1 ok or prints a usage error and returns 0. */
static int check_address(const char *s, const char *what, char **addr_r)
{
	struct mail_address a;
	const char *error = NULL;

	if (mail_address_parse(s, strlen(s), true, &a, &error) < 0) {
		fail(CLI_EXIT_USAGE, "invalid %s '%s': %s", what, s, error ? error : "bad syntax");
		return 0;
	}
	if (a.domain_literal) {
		mail_address_free(&a);
		fail(CLI_EXIT_USAGE, "invalid %s '%s': address literals are not supported", what,
		     s);
		return 0;
	}
	*addr_r = a.addr;
	a.addr = NULL;
	mail_address_free(&a);
	return 1;
}

static int check_domain(const char *s, char **domain_r)
{
	if (mail_domain_valid(s, strlen(s), true) < 0) {
		fail(CLI_EXIT_USAGE, "invalid domain '%s'", s);
		return 0;
	}
	*domain_r = strdup(s);
	if (*domain_r == NULL)
		abort();
	for (char *p = *domain_r; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return 1;
}

/* An alias source: an address, or "@domain" for a catch-all. */
static int check_alias_source(const char *s, char **src_r)
{
	char *dom;

	if (s[0] != '@')
		return check_address(s, "alias source", src_r);
	if (!check_domain(s + 1, &dom))
		return 0;
	if (asprintf(src_r, "@%s", dom) < 0)
		abort();
	free(dom);
	return 1;
}

static int parse_uid(const char *s, uint32_t *uid_r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return 0;
	}
	if (v == 0)
		return 0;
	*uid_r = (uint32_t)v;
	return 1;
}

/* ---- config and store ---- */

static int cli_open(struct cli *c)
{
	const char *path = config_default_path(c->config_path);
	struct store_options opts = {0};
	char *error = NULL;

	if (config_load(path, &c->cfg, &error) < 0)
		return fail_store(error, "cannot load config");
	opts.data_dir = c->cfg->data_dir;
	opts.fsync = c->cfg->store_fsync;
	opts.hostname = c->cfg->hostname;
	opts.backend = c->cfg->store_backend;
	if (store_open(&opts, &c->st, &error) < 0)
		return fail_store(error, "cannot open the store");
	return CLI_EXIT_OK;
}

/* ---- passwords ---- */

static void strip_newline(char *s)
{
	size_t len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
		s[--len] = '\0';
}

/* Reads one line into buf (size CLI_PASSWORD_MAX + 2). 1 ok, 0 EOF, -1 too long. */
static int read_line(FILE *f, char *buf, size_t size)
{
	if (fgets(buf, (int)size, f) == NULL)
		return 0;
	if (strchr(buf, '\n') == NULL && strlen(buf) >= size - 1 && !feof(f))
		return -1;
	strip_newline(buf);
	return 1;
}

static int prompt_tty(FILE *tty, const char *prompt, char *buf, size_t size)
{
	struct termios old, noecho;
	bool restored = false;
	int fd = fileno(tty), rc;

	fputs(prompt, tty);
	fflush(tty);
	if (tcgetattr(fd, &old) == 0) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		noecho.c_lflag |= ECHONL;
		if (tcsetattr(fd, TCSAFLUSH, &noecho) == 0)
			restored = true;
	}
	rc = read_line(tty, buf, size);
	if (restored)
		tcsetattr(fd, TCSAFLUSH, &old);
	return rc;
}

/* Gets the new password (stdin or tty, see DESIGN.md), hashes it and derives its
 * SCRAM-SHA-256 credentials (both slow on purpose; done before the store is
 * written so that a failure changes nothing). Returns CLI_EXIT_OK with *hash_r and
 * *scram_r malloc'd, or an exit code after printing. */
static int get_new_credentials(const struct cli *c, char **hash_r, char **scram_r)
{
	char pw[CLI_PASSWORD_MAX + 2], pw2[CLI_PASSWORD_MAX + 2], *error = NULL;
	int rc, ret = CLI_EXIT_ERROR;

	if (c->password_stdin) {
		rc = read_line(stdin, pw, sizeof(pw));
		if (rc <= 0) {
			ret = fail(CLI_EXIT_ERROR,
			           rc == 0 ? "no password on stdin"
			                   : "password too long (max %d bytes)",
			           CLI_PASSWORD_MAX);
			goto out;
		}
	} else {
		FILE *tty = fopen("/dev/tty", "r+");
		if (tty == NULL) {
			ret = fail(CLI_EXIT_ERROR,
			           "no terminal to read the password from; use --password-stdin");
			goto out;
		}
		rc = prompt_tty(tty, "New password: ", pw, sizeof(pw));
		if (rc > 0 && pw[0] != '\0')
			rc = prompt_tty(tty, "Retype new password: ", pw2, sizeof(pw2));
		fclose(tty);
		if (rc < 0) {
			ret = fail(CLI_EXIT_ERROR, "password too long (max %d bytes)",
			           CLI_PASSWORD_MAX);
			goto out;
		}
		if (rc == 0) {
			ret = fail(CLI_EXIT_ERROR, "no password entered");
			goto out;
		}
		if (pw[0] != '\0' && strcmp(pw, pw2) != 0) {
			ret = fail(CLI_EXIT_ERROR, "passwords do not match");
			goto out;
		}
	}
	if (pw[0] == '\0') {
		ret = fail(CLI_EXIT_ERROR, "empty password refused");
		goto out;
	}
	if (password_hash(pw, hash_r, &error) < 0) {
		ret = fail_store(error, "password hashing failed");
		goto out;
	}
	if (scram_credentials_make(pw, 0, scram_r) < 0) {
		free(*hash_r);
		*hash_r = NULL;
		ret = fail(CLI_EXIT_ERROR, "deriving the SCRAM credentials failed");
		goto out;
	}
	ret = CLI_EXIT_OK;
out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(pw2, sizeof(pw2));
	return ret;
}

/* ---- imported hashes (--hash) ---- */

#define CLI_HASH_MAX 512

/* Dovecot's password scheme names (doveadm pw -l) that are crypt(3) hashes, with
 * the crypt prefixes each may carry. {CRYPT} is "whatever crypt(3) does"; we take
 * only the strong methods from it (DES and MD5 crypt are refused). */
static const struct {
	const char *scheme;
	const char *prefixes[6];
} hash_schemes[] = {
    {"SHA512-CRYPT", {"$6$"}},
    {"SHA256-CRYPT", {"$5$"}},
    {"BLF-CRYPT", {"$2y$", "$2b$", "$2a$"}},
    {"CRYPT", {"$y$", "$6$", "$5$", "$2y$", "$2b$", "$2a$"}},
};

/* crypt(3)'s base64 alphabet */
static size_t crypt_b64_span(const char *s)
{
	return strspn(s, "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
}

/* Whether h is a complete hash of a method we verify, checked by shape (not by
 * running crypt: an imported bcrypt hash of cost 31 would take days). */
static bool hash_shape_ok(const char *h)
{
	size_t n;

	if (strncmp(h, "$6$", 3) == 0 || strncmp(h, "$5$", 3) == 0) {
		/* $6$[rounds=N$]salt$hash: salt 1..16, hash 86 (SHA-512) or 43 chars */
		size_t want = h[1] == '6' ? 86 : 43;
		h += 3;
		if (strncmp(h, "rounds=", 7) == 0) {
			n = strspn(h + 7, "0123456789");
			if (n == 0 || n > 9 || h[7 + n] != '$')
				return false;
			h += 7 + n + 1;
		}
		n = crypt_b64_span(h);
		if (n == 0 || n > 16 || h[n] != '$')
			return false;
		h += n + 1;
		return crypt_b64_span(h) == want && h[want] == '\0';
	}
	if (h[0] == '$' && h[1] == '2' && (h[2] == 'a' || h[2] == 'b' || h[2] == 'y') &&
	    h[3] == '$') {
		/* $2b$NN$ + 22 chars salt + 31 chars hash */
		if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
			return false;
		return crypt_b64_span(h + 7) == 53 && h[60] == '\0';
	}
	if (strncmp(h, "$y$", 3) == 0) {
		/* $y$params$salt$hash, hash 43 chars */
		h += 3;
		for (int field = 0; field < 2; field++) {
			n = crypt_b64_span(h);
			if (n == 0 || h[n] != '$')
				return false;
			h += n + 1;
		}
		return crypt_b64_span(h) == 43 && h[43] == '\0';
	}
	return false;
}

/* Checks an imported hash (Dovecot passwd-file field or a bare crypt string) and
 * returns the crypt(3) string to store in *hash_r (malloc'd), or prints a usage
 * error and returns its exit code. The hash itself is never printed. */
static int import_hash(const char *in, char **hash_r)
{
	const char *h = in, *scheme = NULL;
	size_t scheme_len = 0;
	int si = -1;

	if (strlen(in) > CLI_HASH_MAX)
		return fail(CLI_EXIT_USAGE, "--hash: value too long (max %d bytes)", CLI_HASH_MAX);
	if (in[0] == '{') {
		const char *end = strchr(in, '}');
		if (end == NULL)
			return fail(CLI_EXIT_USAGE, "--hash: unterminated {SCHEME} prefix");
		scheme = in + 1;
		scheme_len = (size_t)(end - scheme);
		h = end + 1;
		/* scheme names are case-insensitive in Dovecot */
		for (size_t i = 0; i < sizeof(hash_schemes) / sizeof(hash_schemes[0]); i++) {
			if (strlen(hash_schemes[i].scheme) == scheme_len &&
			    strncasecmp(hash_schemes[i].scheme, scheme, scheme_len) == 0)
				si = (int)i;
		}
		if (si < 0) {
			/* only printable scheme names are echoed */
			bool printable = scheme_len <= 32;
			for (size_t i = 0; printable && i < scheme_len; i++)
				printable = scheme[i] > ' ' && scheme[i] < 0x7f;
			return fail(CLI_EXIT_USAGE,
			            "--hash: password scheme {%.*s} cannot be imported (supported: "
			            "SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, CRYPT); set a new "
			            "password instead",
			            printable ? (int)scheme_len : 1, printable ? scheme : "?");
		}
	} else {
		si = (int)(sizeof(hash_schemes) / sizeof(hash_schemes[0])) - 1; /* like CRYPT */
	}

	bool prefix_ok = false;
	for (size_t i = 0; i < 6 && hash_schemes[si].prefixes[i] != NULL; i++) {
		if (strncmp(h, hash_schemes[si].prefixes[i],
		            strlen(hash_schemes[si].prefixes[i])) == 0)
			prefix_ok = true;
	}
	if (!prefix_ok) {
		if (scheme != NULL &&
		    si != (int)(sizeof(hash_schemes) / sizeof(hash_schemes[0])) - 1)
			return fail(CLI_EXIT_USAGE,
			            "--hash: the hash does not match its scheme {%s}",
			            hash_schemes[si].scheme);
		return fail(CLI_EXIT_USAGE,
		            "--hash: not a supported crypt(3) hash (expected $y$, $6$, $5$ or "
		            "$2b$/$2y$, optionally after a {SCHEME} prefix; DES and MD5 crypt are "
		            "refused)");
	}
	int cs = crypt_checksalt(h);
	if (!hash_shape_ok(h) || (cs != CRYPT_SALT_OK && cs != CRYPT_SALT_METHOD_LEGACY))
		return fail(CLI_EXIT_USAGE, "--hash: malformed %s hash (truncated or corrupted?)",
		            scheme != NULL ? hash_schemes[si].scheme : "crypt(3)");
	*hash_r = strdup(h);
	if (*hash_r == NULL)
		abort();
	return CLI_EXIT_OK;
}

/* ---- list callbacks ---- */

static void print_name(void *ctx, const char *name)
{
	printf("%s\n", name);
}

static void print_alias(void *ctx, const char *source, const char *target)
{
	printf("%s %s\n", source, target);
}

static void print_mailbox(void *ctx, const struct store_mailbox_info *mb)
{
	printf("%s %u %u %llu\n", mb->name, mb->messages, mb->unseen, (unsigned long long)mb->size);
}

/* ---- subcommands ---- */

static int cmd_domain(struct cli *c)
{
	char *dom = NULL, *error = NULL;
	int ret, rc;

	if (c->action == NULL)
		return usage(c);
	if (strcmp(c->action, "list") == 0) {
		if (c->nargs != 0)
			return usage(c);
		if ((ret = cli_open(c)) != CLI_EXIT_OK)
			return ret;
		if (store_domain_list(c->st, print_name, NULL, &error) < 0)
			return fail_store(error, "listing domains failed");
		return CLI_EXIT_OK;
	}
	if ((strcmp(c->action, "add") != 0 && strcmp(c->action, "del") != 0) || c->nargs != 1)
		return usage(c);
	if (!check_domain(c->args[0], &dom))
		return CLI_EXIT_USAGE;
	if ((ret = cli_open(c)) != CLI_EXIT_OK)
		goto out;
	if (strcmp(c->action, "add") == 0) {
		if (store_domain_add(c->st, dom, &error) < 0)
			ret = fail_store(error, "adding the domain failed");
	} else {
		rc = store_domain_del(c->st, dom, &error);
		if (rc < 0)
			ret = fail_store(error, "deleting the domain failed");
		else if (rc == 0)
			ret = fail(CLI_EXIT_ERROR, "domain %s does not exist", dom);
	}
out:
	free(dom);
	return ret;
}

/* After the password hash is stored: store (or, for an imported hash, clear) the
 * SCRAM credentials. */
static int user_store_scram(struct cli *c, const char *addr, const char *scram)
{
	char *error = NULL;
	int rc = store_account_set_scram(c->st, addr, scram, &error);

	if (rc < 0) {
		int ret = fail(CLI_EXIT_ERROR,
		               "password stored, but storing the SCRAM credentials failed (%s); "
		               "SCRAM logins fail until the password is set again",
		               error != NULL ? error : "?");
		free(error);
		return ret;
	}
	if (rc == 0)
		return fail(CLI_EXIT_ERROR, "account %s does not exist", addr);
	if (scram == NULL) {
		/* a note, not an error: exit status stays 0 */
		fflush(stdout);
		fprintf(stderr,
		        "hermod: note: %s has an imported hash, from which no SCRAM-SHA-256 "
		        "credentials can be derived; SCRAM logins work after the next password "
		        "change (PLAIN and LOGIN work now)\n",
		        addr);
	}
	return CLI_EXIT_OK;
}

static int cmd_user(struct cli *c)
{
	char *addr = NULL, *hash = NULL, *scram = NULL, *error = NULL;
	int ret, rc;

	if (c->action == NULL)
		return usage(c);
	if (strcmp(c->action, "list") == 0) {
		if (c->nargs != 0)
			return usage(c);
		if ((ret = cli_open(c)) != CLI_EXIT_OK)
			return ret;
		if (store_account_list(c->st, print_name, NULL, &error) < 0)
			return fail_store(error, "listing accounts failed");
		return CLI_EXIT_OK;
	}
	if ((strcmp(c->action, "add") != 0 && strcmp(c->action, "del") != 0 &&
	     strcmp(c->action, "passwd") != 0) ||
	    c->nargs != 1)
		return usage(c);
	if ((c->password_stdin || c->hash != NULL) && strcmp(c->action, "del") == 0)
		return usage(c);
	if (!check_address(c->args[0], "address", &addr))
		return CLI_EXIT_USAGE;
	/* an imported hash is an argument: checked before anything is opened */
	if (c->hash != NULL && (ret = import_hash(c->hash, &hash)) != CLI_EXIT_OK)
		goto out;
	if ((ret = cli_open(c)) != CLI_EXIT_OK)
		goto out;

	if (strcmp(c->action, "del") == 0) {
		rc = store_account_del(c->st, addr, &error);
		if (rc < 0)
			ret = fail_store(error, "deleting the account failed");
		else if (rc == 0)
			ret = fail(CLI_EXIT_ERROR, "account %s does not exist", addr);
		goto out;
	}

	/* Check what can fail before asking for a password. */
	rc = store_account_get_credentials(c->st, addr, NULL, NULL, NULL, &error);
	if (rc < 0) {
		ret = fail_store(error, "looking up the account failed");
		goto out;
	}
	if (strcmp(c->action, "add") == 0) {
		char *at = strrchr(addr, '@');
		if (rc == 1) {
			ret = fail(CLI_EXIT_ERROR, "account %s already exists", addr);
			goto out;
		}
		rc = store_domain_exists(c->st, at + 1, &error);
		if (rc <= 0) {
			ret = rc < 0 ? fail_store(error, "looking up the domain failed")
			             : fail(CLI_EXIT_ERROR, "domain %s does not exist", at + 1);
			goto out;
		}
		if (hash == NULL && (ret = get_new_credentials(c, &hash, &scram)) != CLI_EXIT_OK)
			goto out;
		if (store_account_add(c->st, addr, hash, &error) < 0)
			ret = fail_store(error, "adding the account failed");
		else
			ret = user_store_scram(c, addr, scram);
	} else {
		if (rc == 0) {
			ret = fail(CLI_EXIT_ERROR, "account %s does not exist", addr);
			goto out;
		}
		if (hash == NULL && (ret = get_new_credentials(c, &hash, &scram)) != CLI_EXIT_OK)
			goto out;
		/* This also clears the SCRAM credentials of the old password. */
		rc = store_account_set_password(c->st, addr, hash, &error);
		if (rc < 0)
			ret = fail_store(error, "setting the password failed");
		else if (rc == 0)
			ret = fail(CLI_EXIT_ERROR, "account %s does not exist", addr);
		else
			ret = user_store_scram(c, addr, scram);
	}
out:
	if (scram != NULL) {
		explicit_bzero(scram, strlen(scram));
		free(scram);
	}
	free(hash);
	free(addr);
	return ret;
}

static int cmd_alias(struct cli *c)
{
	char *src = NULL, *dst = NULL, *error = NULL;
	int ret = CLI_EXIT_USAGE, rc;

	if (c->action == NULL)
		return usage(c);
	if (strcmp(c->action, "list") == 0) {
		if (c->nargs != 0)
			return usage(c);
		if ((ret = cli_open(c)) != CLI_EXIT_OK)
			return ret;
		if (store_alias_list(c->st, print_alias, NULL, &error) < 0)
			return fail_store(error, "listing aliases failed");
		return CLI_EXIT_OK;
	}
	if (strcmp(c->action, "add") == 0) {
		if (c->nargs != 2)
			return usage(c);
	} else if (strcmp(c->action, "del") == 0) {
		if (c->nargs != 1 && c->nargs != 2)
			return usage(c);
	} else {
		return usage(c);
	}
	if (!check_alias_source(c->args[0], &src))
		goto out;
	if (c->nargs == 2 && !check_address(c->args[1], "alias target", &dst))
		goto out;
	if ((ret = cli_open(c)) != CLI_EXIT_OK)
		goto out;
	if (strcmp(c->action, "add") == 0) {
		if (store_alias_add(c->st, src, dst, &error) < 0)
			ret = fail_store(error, "adding the alias failed");
	} else {
		rc = store_alias_del(c->st, src, dst, &error);
		if (rc < 0)
			ret = fail_store(error, "deleting the alias failed");
		else if (rc == 0 && dst != NULL)
			ret = fail(CLI_EXIT_ERROR, "alias %s -> %s does not exist", src, dst);
		else if (rc == 0)
			ret = fail(CLI_EXIT_ERROR, "alias %s does not exist", src);
	}
out:
	free(src);
	free(dst);
	return ret;
}

/* Why a mailbox lookup found nothing: the account or the mailbox. */
static int fail_no_mailbox(struct cli *c, const char *addr, const char *mailbox)
{
	char *hash = NULL, *error = NULL;
	int rc = store_account_get_password(c->st, addr, &hash, &error);

	free(hash);
	if (rc < 0)
		return fail_store(error, "looking up the account failed");
	if (rc == 0)
		return fail(CLI_EXIT_ERROR, "account %s does not exist", addr);
	return fail(CLI_EXIT_ERROR, "mailbox %s of %s does not exist", mailbox, addr);
}

static int cmd_mailbox(struct cli *c)
{
	char *addr = NULL, *error = NULL;
	int ret, rc;

	if (c->action == NULL || strcmp(c->action, "list") != 0 || c->nargs != 1)
		return usage(c);
	if (!check_address(c->args[0], "address", &addr))
		return CLI_EXIT_USAGE;
	if ((ret = cli_open(c)) != CLI_EXIT_OK)
		goto out;
	rc = store_mailbox_list(c->st, addr, print_mailbox, NULL, &error);
	if (rc < 0)
		ret = fail_store(error, "listing mailboxes failed");
	else if (rc == 0)
		ret = fail(CLI_EXIT_ERROR, "account %s does not exist", addr);
out:
	free(addr);
	return ret;
}

/* Finds the Subject header field in the message's header section and returns its
 * value unfolded (RFC 5322 2.2.3: CRLF followed by WSP is removed), leading and
 * trailing blanks trimmed, and control characters replaced so it prints on one
 * line. No RFC 2047 decoding. Returns a malloc'd string ("" when absent). */
static char *message_subject(const char *data, size_t len)
{
	size_t i = 0, end = len < CLI_SUBJECT_SCAN_MAX ? len : CLI_SUBJECT_SCAN_MAX;
	char *out;

	while (i < end) {
		size_t line = i, eol;

		/* an empty line ends the header section */
		if (data[i] == '\n' || (data[i] == '\r' && i + 1 < end && data[i + 1] == '\n'))
			break;
		eol = i;
		while (eol < end && data[eol] != '\n')
			eol++;
		if (eol - line >= 8 && strncasecmp(data + line, "Subject", 7) == 0) {
			size_t p = line + 7;
			while (p < eol && (data[p] == ' ' || data[p] == '\t'))
				p++;
			if (p < eol && data[p] == ':') {
				size_t o = 0, vend;

				p++;
				/* the value runs on through continuation lines */
				vend = eol;
				while (vend + 1 < end &&
				       (data[vend + 1] == ' ' || data[vend + 1] == '\t')) {
					vend++;
					while (vend < end && data[vend] != '\n')
						vend++;
				}
				out = malloc(vend - p + 1);
				if (out == NULL)
					abort();
				for (size_t k = p; k < vend; k++) {
					unsigned char ch = (unsigned char)data[k];
					if (ch == '\r' || ch == '\n')
						continue; /* unfold */
					if (ch == '\t')
						ch = ' ';
					else if (ch < ' ' || ch == 0x7f)
						ch = '?';
					out[o++] = (char)ch;
				}
				while (o > 0 && out[o - 1] == ' ')
					o--;
				out[o] = '\0';
				size_t lead = strspn(out, " ");
				memmove(out, out + lead, o - lead + 1);
				return out;
			}
		}
		i = eol + 1;
	}
	out = strdup("");
	if (out == NULL)
		abort();
	return out;
}

struct message_row {
	uint32_t uid;
	uint64_t size;
	char *flags;
};

struct message_rows {
	struct message_row *v;
	size_t n, cap;
};

static void collect_message(void *ctx, const struct store_message_info *m)
{
	struct message_rows *rows = ctx;

	if (rows->n == rows->cap) {
		size_t cap = rows->cap == 0 ? 64 : rows->cap * 2;
		struct message_row *v = realloc(rows->v, cap * sizeof(*v));
		if (v == NULL)
			abort();
		rows->v = v;
		rows->cap = cap;
	}
	rows->v[rows->n].uid = m->uid;
	rows->v[rows->n].size = m->size;
	rows->v[rows->n].flags = strdup(m->flags);
	if (rows->v[rows->n].flags == NULL)
		abort();
	rows->n++;
}

static int message_list(struct cli *c, const char *addr, const char *mailbox)
{
	struct message_rows rows = {0};
	char *error = NULL;
	int ret = CLI_EXIT_OK, rc;

	rc = store_message_list(c->st, addr, mailbox, collect_message, &rows, &error);
	if (rc < 0)
		return fail_store(error, "listing messages failed");
	if (rc == 0)
		return fail_no_mailbox(c, addr, mailbox);
	/* Subjects are read after the listing so that no read transaction stays open
	 * while blob files are read. */
	for (size_t i = 0; i < rows.n; i++) {
		char *data = NULL, *subject;
		size_t len = 0;

		if (ret != CLI_EXIT_OK)
			break;
		rc = store_message_get(c->st, addr, mailbox, rows.v[i].uid, &data, &len, &error);
		if (rc < 0) {
			ret = fail_store(error, "reading a message failed");
			break;
		}
		if (rc == 0)
			continue; /* expunged meanwhile */
		subject = message_subject(data, len);
		printf("%u %llu (%s) %s\n", rows.v[i].uid, (unsigned long long)rows.v[i].size,
		       rows.v[i].flags, subject);
		free(subject);
		free(data);
	}
	for (size_t i = 0; i < rows.n; i++)
		free(rows.v[i].flags);
	free(rows.v);
	return ret;
}

static int message_show(struct cli *c, const char *addr, const char *mailbox, uint32_t uid)
{
	char *data = NULL, *error = NULL;
	size_t len = 0;
	int rc, ret = CLI_EXIT_OK;

	rc = store_message_get(c->st, addr, mailbox, uid, &data, &len, &error);
	if (rc < 0)
		return fail_store(error, "reading the message failed");
	if (rc == 0) {
		/* distinguish a missing account/mailbox from a missing UID */
		struct message_rows rows = {0};
		char *err2 = NULL;
		rc = store_message_list(c->st, addr, mailbox, collect_message, &rows, &err2);
		for (size_t i = 0; i < rows.n; i++)
			free(rows.v[i].flags);
		free(rows.v);
		if (rc < 0)
			return fail_store(err2, "listing messages failed");
		if (rc == 0)
			return fail_no_mailbox(c, addr, mailbox);
		return fail(CLI_EXIT_ERROR, "no message with UID %u in mailbox %s of %s", uid,
		            mailbox, addr);
	}
	if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
		ret = fail(CLI_EXIT_ERROR, "writing the message: %s", strerror(errno));
	free(data);
	return ret;
}

static int cmd_message(struct cli *c)
{
	char *addr = NULL;
	uint32_t uid = 0;
	int ret;

	if (c->action == NULL)
		return usage(c);
	if (strcmp(c->action, "list") == 0) {
		if (c->nargs != 1 && c->nargs != 2)
			return usage(c);
	} else if (strcmp(c->action, "show") == 0) {
		if (c->nargs != 3)
			return usage(c);
		if (!parse_uid(c->args[2], &uid))
			return fail(CLI_EXIT_USAGE, "invalid UID '%s'", c->args[2]);
	} else {
		return usage(c);
	}
	if (c->nargs >= 2 && c->args[1][0] == '\0')
		return fail(CLI_EXIT_USAGE, "empty mailbox name");
	if (!check_address(c->args[0], "address", &addr))
		return CLI_EXIT_USAGE;
	if ((ret = cli_open(c)) == CLI_EXIT_OK) {
		const char *mailbox = c->nargs >= 2 ? c->args[1] : "INBOX";
		if (uid == 0)
			ret = message_list(c, addr, mailbox);
		else
			ret = message_show(c, addr, mailbox, uid);
	}
	free(addr);
	return ret;
}

/* ---- queue ---- */

/* A duration for people: "45s", "12m", "2h13m", "3d4h" (negative: 0s). */
static void format_duration(char *buf, size_t size, int64_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, size, "%llds", (long long)secs);
	else if (secs < 3600)
		snprintf(buf, size, "%lldm", (long long)(secs / 60));
	else if (secs < 86400)
		snprintf(buf, size, "%lldh%lldm", (long long)(secs / 3600),
		         (long long)(secs % 3600 / 60));
	else
		snprintf(buf, size, "%lldd%lldh", (long long)(secs / 86400),
		         (long long)(secs % 86400 / 3600));
}

/* `queue list`, per entry: "ID SIZE CREATED SENDER -> RCPT[,RCPT...]" (CREATED in
 * ISO 8601 UTC, the null sender as "<>"), then indented lines: the delivery
 * state ("age 2h13m, 3 attempts, next try in 25m"), then one line per recipient
 * with its state and last reply. The store separates recipients with spaces; a
 * space inside a quoted local part ("a b"@d) is part of its recipient and stays. */
static void print_queue_entry(void *ctx, const struct store_queue_info *q)
{
	const time_t *now = ctx;
	char created[32] = "?", age[32], next[48];
	struct tm tm;
	time_t t = (time_t)q->created;
	bool quoted = false, escaped = false;

	if (gmtime_r(&t, &tm) != NULL)
		strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%lld %llu %s %s -> ", (long long)q->id, (unsigned long long)q->size, created,
	       q->sender[0] != '\0' ? q->sender : "<>");
	for (const char *p = q->rcpts; *p != '\0'; p++) {
		if (escaped)
			escaped = false;
		else if (quoted && *p == '\\')
			escaped = true;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == ' ' && !quoted) {
			putchar(',');
			continue;
		}
		putchar(*p);
	}
	putchar('\n');
	format_duration(age, sizeof(age), (int64_t)*now - q->created);
	if (q->held)
		snprintf(next, sizeof(next), "held");
	else if (q->next_attempt <= (int64_t)*now)
		snprintf(next, sizeof(next), "next try now");
	else {
		char in[32];
		format_duration(in, sizeof(in), q->next_attempt - (int64_t)*now);
		snprintf(next, sizeof(next), "next try in %s", in);
	}
	printf("    age %s, %u attempt%s, %s", age, q->attempts, q->attempts == 1 ? "" : "s", next);
	if (q->lease_owner != NULL && q->lease_until > (int64_t)*now)
		printf(", being tried by %s", q->lease_owner);
	putchar('\n');
	for (size_t i = 0; i < q->nrcpt_info; i++) {
		const struct store_queue_rcpt *r = &q->rcpt_info[i];
		printf("    %s %s", r->rcpt != NULL ? r->rcpt : "",
		       r->state != NULL ? r->state : "");
		if (r->last_reply != NULL)
			printf(": %s", r->last_reply);
		putchar('\n');
	}
}

/* The envelope of `queue show`: "Key: value" lines, one Recipient line each. */
static void print_queue_envelope(void *ctx, const struct store_queue_info *q)
{
	static const char *const bodies[] = {"7BIT", "8BITMIME", "BINARYMIME"};
	static const char *const rets[] = {"", "FULL", "HDRS"};
	char created[32] = "?";
	struct tm tm;
	time_t t = (time_t)q->created;

	if (gmtime_r(&t, &tm) != NULL)
		strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("Id: %lld\n", (long long)q->id);
	printf("Created: %s\n", created);
	printf("Size: %llu\n", (unsigned long long)q->size);
	printf("Sender: %s\n", q->sender[0] != '\0' ? q->sender : "<>");
	if (q->account[0] != '\0')
		printf("Account: %s\n", q->account);
	printf("Body: %s\n", q->body >= 0 && q->body <= 2 ? bodies[q->body] : "?");
	printf("Smtputf8: %s\n", q->smtputf8 ? "yes" : "no");
	if (q->tls == STORE_TLS_REQUIRE)
		printf("Tls: requiretls\n"); /* RFC 8689 */
	else if (q->tls == STORE_TLS_NOT_REQUIRED)
		printf("Tls: not-required\n"); /* TLS-Required: No */
	if (q->envid != NULL)
		printf("Envid: %s\n", q->envid);
	if (q->ret == 1 || q->ret == 2)
		printf("Ret: %s\n", rets[q->ret]);
	printf("Trace-Length: %llu\n", (unsigned long long)q->trace_len);
	printf("Attempts: %u\n", q->attempts);
	t = (time_t)q->next_attempt;
	if (q->next_attempt > 0 && gmtime_r(&t, &tm) != NULL &&
	    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		printf("Next-Attempt: %s\n", created);
	else
		printf("Next-Attempt: now\n");
	if (q->held)
		printf("Held: yes\n");
	if (q->lease_owner != NULL)
		printf("Lease: %s until %lld\n", q->lease_owner, (long long)q->lease_until);
	for (size_t i = 0; i < q->nrcpt_info; i++) {
		const struct store_queue_rcpt *r = &q->rcpt_info[i];
		printf("Recipient: %s state=%s", r->rcpt != NULL ? r->rcpt : "",
		       r->state != NULL ? r->state : "");
		if (r->notify != 0) {
			printf(" notify=");
			if (r->notify & STORE_NOTIFY_NEVER)
				printf("NEVER");
			const char *sep = "";
			static const struct {
				unsigned bit;
				const char *name;
			} nb[] = {{STORE_NOTIFY_SUCCESS, "SUCCESS"},
			          {STORE_NOTIFY_FAILURE, "FAILURE"},
			          {STORE_NOTIFY_DELAY, "DELAY"}};
			for (size_t k = 0; k < sizeof(nb) / sizeof(nb[0]); k++) {
				if (r->notify & nb[k].bit) {
					printf("%s%s", sep, nb[k].name);
					sep = ",";
				}
			}
		}
		if (r->orcpt != NULL)
			printf(" orcpt=%s", r->orcpt);
		putchar('\n');
		if (r->last_reply != NULL)
			printf("Last-Reply: %s\n", r->last_reply);
	}
	putchar('\n');
}

/* A queue id: a positive decimal integer. */
static int parse_queue_id(const char *s, int64_t *id_r)
{
	int64_t v = 0;

	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (*s - '0');
	}
	if (v == 0)
		return 0;
	*id_r = v;
	return 1;
}

/* `queue flush|delete|hold|release|bounce`: the change to entry id (flush: 0 =
 * every entry). Prints nothing on success. */
static int queue_change(struct cli *c, const char *action, int64_t id)
{
	char *error = NULL;
	int rc;

	if (strcmp(action, "flush") == 0)
		rc = store_queue_flush(c->st, id, &error);
	else if (strcmp(action, "delete") == 0)
		rc = store_queue_delete(c->st, id, &error);
	else if (strcmp(action, "hold") == 0 || strcmp(action, "release") == 0)
		rc = store_queue_hold(c->st, id, strcmp(action, "hold") == 0, &error);
	else
		rc = store_queue_bounce(c->st, id, &error);
	if (rc < 0)
		return fail_store(error, "changing the queue failed");
	if (rc == 0)
		return fail(CLI_EXIT_ERROR, "queue entry %lld does not exist", (long long)id);
	return CLI_EXIT_OK;
}

static int cmd_queue(struct cli *c)
{
	static const char *const changes[] = {"flush", "delete", "hold", "release", "bounce"};
	char *data = NULL, *error = NULL;
	size_t len = 0;
	int64_t id = 0;
	int ret, rc;

	if (c->action == NULL)
		return usage(c);
	if (strcmp(c->action, "list") == 0) {
		if (c->nargs != 0)
			return usage(c);
		if ((ret = cli_open(c)) != CLI_EXIT_OK)
			return ret;
		time_t now = time(NULL);
		if (store_queue_list(c->st, print_queue_entry, &now, &error) < 0)
			return fail_store(error, "listing the queue failed");
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
		if (strcmp(c->action, changes[i]) != 0)
			continue;
		/* flush alone: every entry */
		if (c->nargs != 1 && !(c->nargs == 0 && i == 0))
			return usage(c);
		if (c->nargs == 1 && !parse_queue_id(c->args[0], &id))
			return fail(CLI_EXIT_USAGE, "invalid queue id '%s'", c->args[0]);
		if ((ret = cli_open(c)) != CLI_EXIT_OK)
			return ret;
		return queue_change(c, c->action, id);
	}
	if (strcmp(c->action, "show") != 0 || c->nargs != 1)
		return usage(c);
	if (!parse_queue_id(c->args[0], &id))
		return fail(CLI_EXIT_USAGE, "invalid queue id '%s'", c->args[0]);
	if ((ret = cli_open(c)) != CLI_EXIT_OK)
		return ret;
	rc = store_queue_show(c->st, id, print_queue_envelope, NULL, &error);
	if (rc < 0)
		return fail_store(error, "reading the queue entry failed");
	if (rc == 0)
		return fail(CLI_EXIT_ERROR, "queue entry %lld does not exist", (long long)id);
	rc = store_queue_get(c->st, id, &data, &len, &error);
	if (rc < 0)
		return fail_store(error, "reading the queued message failed");
	if (rc == 0)
		return fail(CLI_EXIT_ERROR, "queue entry %lld does not exist", (long long)id);
	if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
		ret = fail(CLI_EXIT_ERROR, "writing the message: %s", strerror(errno));
	free(data);
	return ret;
}

/* ---- dns ---- */

static int cmd_dns(struct cli *c)
{
	char *error = NULL;

	if (c->action == NULL || strcmp(c->action, "lookup") != 0 || c->nargs != 2)
		return usage(c);
	if (config_load(config_default_path(c->config_path), &c->cfg, &error) < 0)
		return fail_store(error, "cannot load config");
	return cli_dns_lookup(c->cfg, c->args[0], c->args[1]);
}

/* ---- mta-sts ---- */

static int cmd_mta_sts(struct cli *c)
{
	int ret;

	if (c->action == NULL || strcmp(c->action, "lookup") != 0 || c->nargs != 1)
		return usage(c);
	if (dns_name_check(c->args[0]) != 1 || strlen(c->args[0]) > MTA_STS_NAME_MAX - 9)
		return fail(CLI_EXIT_USAGE, "'%s' is not a valid domain name", c->args[0]);
	if ((ret = cli_open(c)) != CLI_EXIT_OK)
		return ret;
	return cli_mta_sts_lookup(c->cfg, c->st, c->args[0]);
}

/* ---- tls-report ---- */

static int cmd_tls_report(struct cli *c)
{
	int ret;
	char today[TLSRPT_DAY_LEN + 1];

	if (c->action == NULL)
		return usage(c);
	if (strcmp(c->action, "list") == 0) {
		if (c->nargs != 0)
			return usage(c);
		if ((ret = cli_open(c)) != CLI_EXIT_OK)
			return ret;
		return cli_tlsrpt_list(c->st);
	}
	if (strcmp(c->action, "send") != 0 || c->nargs > 1)
		return usage(c);
	const char *before = c->nargs == 1 ? c->args[0] : NULL;
	if (before != NULL && tlsrpt_day_start(before) < 0)
		return fail(CLI_EXIT_USAGE, "'%s' is not a day (YYYY-MM-DD)", before);
	if (before == NULL) {
		if (tlsrpt_day(time(NULL), today) < 0)
			return fail(CLI_EXIT_ERROR, "cannot tell the date");
		before = today;
	}
	if ((ret = cli_open(c)) != CLI_EXIT_OK)
		return ret;
	return cli_tlsrpt_send(c->cfg, c->st, before);
}

/* ---- dkim ---- */

#define CLI_TXT_STRING_MAX 255 /* RFC 1035 3.3: one character-string */

/* <data_dir>/dkim, malloc'd. */
static char *dkim_dir(const struct cli *c)
{
	char *dir;

	if (asprintf(&dir, "%s/dkim", c->cfg->data_dir) < 0)
		abort();
	return dir;
}

/* The zone-file line of a key record: the value split into quoted strings of
 * at most 255 octets on one line (a TXT record holds several; verifiers
 * join them, RFC 6376 3.6.2.2). The value holds no '"' nor '\'. */
static void print_dkim_txt(const char *domain, const char *selector, const char *txt)
{
	size_t len = strlen(txt);

	printf("%s._domainkey.%s. IN TXT", selector, domain);
	for (size_t i = 0; i < len; i += CLI_TXT_STRING_MAX) {
		size_t k = len - i < CLI_TXT_STRING_MAX ? len - i : CLI_TXT_STRING_MAX;
		printf(" \"%.*s\"", (int)k, txt + i);
	}
	putchar('\n');
}

static void print_dkim_key(void *ctx, const char *domain, const char *selector,
                           const char *algorithm, const char *txt)
{
	printf("%s %s %s ", domain, selector, algorithm);
	print_dkim_txt(domain, selector, txt);
}

static int dkim_keygen_run(struct cli *c, const char *dom, const char *const *sels,
                           const char *const *algs, size_t n)
{
	char *dir = dkim_dir(c), *error = NULL, *txt = NULL;
	int ret = CLI_EXIT_OK, rc;

	/* all or nothing: no key is made when one of them exists already */
	for (size_t i = 0; i < n && ret == CLI_EXIT_OK; i++) {
		rc = dkim_key_exists(dir, dom, sels[i], &error);
		if (rc < 0)
			ret = fail_store(error, "checking the DKIM keys failed");
		else if (rc > 0)
			ret =
			    fail(CLI_EXIT_ERROR, "DKIM key %s for %s already exists", sels[i], dom);
	}
	for (size_t i = 0; i < n && ret == CLI_EXIT_OK; i++) {
		if (dkim_keygen(dir, dom, sels[i], algs[i], &txt, &error) < 0) {
			ret = fail_store(error, "generating the DKIM key failed");
			break;
		}
		print_dkim_txt(dom, sels[i], txt);
		free(txt);
		txt = NULL;
	}
	free(dir);
	return ret;
}

static int cmd_dkim(struct cli *c)
{
	char *dom = NULL, *sel = NULL, *error = NULL, *dir, date[16], sel_r[24], sel_e[24];
	const char *sels[2], *algs[2];
	size_t n = 0;
	int ret, rc;

	if (c->action == NULL)
		return usage(c);
	if (strcmp(c->action, "list") == 0) {
		if (c->nargs != 0 || c->selector != NULL || c->algorithm != NULL)
			return usage(c);
		if (config_load(config_default_path(c->config_path), &c->cfg, &error) < 0)
			return fail_store(error, "cannot load config");
		dir = dkim_dir(c);
		ret = CLI_EXIT_OK;
		if (dkim_key_list(dir, print_dkim_key, NULL, &error) < 0)
			ret = fail_store(error, "listing the DKIM keys failed");
		free(dir);
		return ret;
	}
	if (strcmp(c->action, "keygen") != 0 || c->nargs != 1)
		return usage(c);
	if (c->algorithm != NULL && strcmp(c->algorithm, "rsa") != 0 &&
	    strcmp(c->algorithm, "ed25519") != 0)
		return fail(CLI_EXIT_USAGE, "unknown DKIM algorithm '%s' (rsa or ed25519)",
		            c->algorithm);
	if (c->selector != NULL && c->algorithm == NULL)
		return fail(CLI_EXIT_USAGE, "--selector needs --algorithm (one key per selector)");
	if (c->selector != NULL) {
		/* DNS names are case-insensitive: the file name is lower-case */
		if ((sel = strdup(c->selector)) == NULL)
			abort();
		for (char *p = sel; *p != '\0'; p++) {
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		}
		if (!dkim_name_valid(sel)) {
			free(sel);
			return fail(CLI_EXIT_USAGE, "invalid DKIM selector '%s'", c->selector);
		}
	}
	if (!check_domain(c->args[0], &dom)) {
		free(sel);
		return CLI_EXIT_USAGE;
	}
	if (!dkim_name_valid(dom)) {
		ret = fail(CLI_EXIT_USAGE, "invalid domain '%s' for DKIM", c->args[0]);
		goto out;
	}
	/* default selectors: the month (UTC) and r or e, e.g. 202612r and
	 * 202612e, so that a later rollover gets new names */
	time_t now = time(NULL);
	struct tm tm;
	if (gmtime_r(&now, &tm) == NULL || strftime(date, sizeof(date), "%Y%m", &tm) == 0)
		abort();
	snprintf(sel_r, sizeof(sel_r), "%sr", date);
	snprintf(sel_e, sizeof(sel_e), "%se", date);
	if (c->algorithm == NULL || strcmp(c->algorithm, "rsa") == 0) {
		sels[n] = sel != NULL ? sel : sel_r;
		algs[n++] = "rsa";
	}
	if (c->algorithm == NULL || strcmp(c->algorithm, "ed25519") == 0) {
		sels[n] = sel != NULL ? sel : sel_e;
		algs[n++] = "ed25519";
	}
	if ((ret = cli_open(c)) != CLI_EXIT_OK)
		goto out;
	rc = store_domain_exists(c->st, dom, &error);
	if (rc < 0) {
		ret = fail_store(error, "looking up the domain failed");
		goto out;
	}
	if (rc == 0) {
		ret = fail(CLI_EXIT_ERROR, "%s is not a local domain (see hermod domain add)", dom);
		goto out;
	}
	ret = dkim_keygen_run(c, dom, sels, algs, n);
out:
	free(dom);
	free(sel);
	return ret;
}

/* ---- entry ---- */

static const struct {
	const char *name;
	int (*run)(struct cli *c);
} commands[] = {
    {"domain", cmd_domain},   {"user", cmd_user},
    {"alias", cmd_alias},     {"mailbox", cmd_mailbox},
    {"message", cmd_message}, {"queue", cmd_queue},
    {"dns", cmd_dns},         {"dkim", cmd_dkim},
    {"mta-sts", cmd_mta_sts}, {"tls-report", cmd_tls_report},
};

int cli_main(int argc, char **argv)
{
	struct cli c = {0};
	int (*run)(struct cli *) = NULL;
	bool positional_only = false;
	int ret;

	if (argc < 1 || argv[0] == NULL)
		return fail(CLI_EXIT_USAGE, "no command given");
	c.cmd = argv[0];
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, c.cmd) == 0)
			run = commands[i].run;
	}
	if (run == NULL)
		return fail(CLI_EXIT_USAGE, "unknown command '%s'", c.cmd);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!positional_only && a[0] == '-' && a[1] != '\0') {
			if (strcmp(a, "--") == 0) {
				positional_only = true;
			} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
				if (i + 1 >= argc)
					return fail(CLI_EXIT_USAGE, "option %s needs a file", a);
				c.config_path = argv[++i];
			} else if (strncmp(a, "--config=", 9) == 0) {
				c.config_path = a + 9;
			} else if (strcmp(a, "--password-stdin") == 0 &&
			           strcmp(c.cmd, "user") == 0) {
				c.password_stdin = true;
			} else if (strcmp(a, "--hash") == 0 && strcmp(c.cmd, "user") == 0) {
				if (i + 1 >= argc)
					return fail(CLI_EXIT_USAGE, "option --hash needs a hash");
				c.hash = argv[++i];
			} else if (strncmp(a, "--hash=", 7) == 0 && strcmp(c.cmd, "user") == 0) {
				c.hash = a + 7;
			} else if ((strcmp(a, "--selector") == 0 ||
			            strcmp(a, "--algorithm") == 0) &&
			           strcmp(c.cmd, "dkim") == 0) {
				if (i + 1 >= argc)
					return fail(CLI_EXIT_USAGE, "option %s needs a value", a);
				*(a[2] == 's' ? &c.selector : &c.algorithm) = argv[++i];
			} else if (strncmp(a, "--selector=", 11) == 0 &&
			           strcmp(c.cmd, "dkim") == 0) {
				c.selector = a + 11;
			} else if (strncmp(a, "--algorithm=", 12) == 0 &&
			           strcmp(c.cmd, "dkim") == 0) {
				c.algorithm = a + 12;
			} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
				printf("usage: %s\n", usage_of(c.cmd));
				return CLI_EXIT_OK;
			} else {
				return fail(CLI_EXIT_USAGE, "unknown option '%s' (usage: %s)", a,
				            usage_of(c.cmd));
			}
			continue;
		}
		if (c.action == NULL)
			c.action = a;
		else if (c.nargs < CLI_ARGS_MAX)
			c.args[c.nargs++] = a;
		else
			return usage(&c);
	}
	if (c.password_stdin && c.action != NULL && strcmp(c.action, "add") != 0 &&
	    strcmp(c.action, "passwd") != 0)
		return fail(CLI_EXIT_USAGE, "--password-stdin only goes with user add|passwd");
	if (c.hash != NULL && c.action != NULL && strcmp(c.action, "add") != 0 &&
	    strcmp(c.action, "passwd") != 0)
		return fail(CLI_EXIT_USAGE, "--hash only goes with user add|passwd");
	if (c.hash != NULL && c.password_stdin)
		return fail(CLI_EXIT_USAGE, "--hash and --password-stdin exclude each other");

	ret = run(&c);
	store_close(&c.st);
	config_free(&c.cfg);
	if (fflush(stdout) != 0 && ret == CLI_EXIT_OK)
		ret = fail(CLI_EXIT_ERROR, "writing output: %s", strerror(errno));
	return ret;
}
