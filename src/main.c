/* hermod: command-line entry point. See DESIGN.md for the CLI contract. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/version.h"
#include "net/tls.h"
#include "serve.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hermod COMMAND [-c FILE] [ARGS]\n"
		   "  serve   [-c FILE]                 run the server in the foreground\n"
		   "  check   [-c FILE]                 validate the config\n"
		   "  domain  add|del|list [DOMAIN]\n"
		   "  user    add|del|list|passwd [ADDRESS] [--password-stdin]\n"
		   "  alias   add|del|list [SOURCE [TARGET]]\n"
		   "  mailbox list ADDRESS\n"
		   "  message list ADDRESS [MAILBOX]\n"
		   "  message show ADDRESS MAILBOX UID\n"
		   "  queue   list\n"
		   "  version\n"
		   "The config file is -c FILE, else $HERMOD_CONFIG, else " CONFIG_DEFAULT_PATH ".\n");
}

/* serve and check take only -c FILE */
static int main_config_only(int argc, char **argv, const char **path_r)
{
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
		} else {
			fprintf(stderr, "hermod: %s: unexpected argument '%s'\n", argv[0], argv[i]);
			return -1;
		}
	}
	*path_r = config_default_path(path);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("hermod %s\n", HERMOD_VERSION);
		return 0;
	}
	if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "check") == 0) {
		const char *path;
		if (main_config_only(argc - 1, argv + 1, &path) < 0)
			return 2;
		if (strcmp(cmd, "serve") == 0)
			return serve_main(path);
		struct config *cfg = NULL;
		char *err = NULL;
		if (config_load(path, &cfg, &err) < 0 || serve_check(cfg, &err) < 0) {
			fprintf(stderr, "%s\n", err != NULL ? err : "hermod: cannot load config");
			free(err);
			config_free(&cfg);
			return 1;
		}
		/* the certificates too: a bad one must not wait for the next start */
		struct tls_server *tls = NULL;
		if (tls_server_new(cfg, &tls, &err) < 0) {
			fprintf(stderr, "%s: %s\n", path, err != NULL ? err : "TLS set-up failed");
			free(err);
			config_free(&cfg);
			return 1;
		}
		tls_server_unref(&tls);
		config_free(&cfg);
		printf("%s: ok\n", path);
		return 0;
	}
	if (cli_handles(cmd))
		return cli_main(argc - 1, argv + 1);
	fprintf(stderr, "hermod: unknown command '%s' (try 'hermod help')\n", cmd);
	return 2;
}
