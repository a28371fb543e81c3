/* The admin command-line tool: hermod domain|user|alias|mailbox|message|queue|dns|mta-sts ...
 * (admin reference: docs/cli.md)
 * (contract in DESIGN.md, "Command-line interface"). Works while the server runs:
 * it opens the same store, whose writes wait on SQLite's busy timeout. */
#ifndef HERMOD_CLI_CLI_H
#define HERMOD_CLI_CLI_H

/* Exit codes of cli_main. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_ERROR 1 /* runtime error: "domain example.test does not exist" */
#define CLI_EXIT_USAGE 2 /* bad arguments */

/* argv[0] is the subcommand ("domain", "user", "alias", "mailbox", "message", "dns",
 * "mta-sts", "queue"), the rest its arguments; "-c FILE" may appear anywhere. Output goes to
 * stdout; an error is one line on stderr starting with "hermod: " (a successful
 * command may add one "hermod: note: " line). Returns the process exit code. */
int cli_main(int argc, char **argv);

/* 1 if cli_main handles this subcommand name, else 0 (lets main.c dispatch). */
int cli_handles(const char *subcommand);

#endif
