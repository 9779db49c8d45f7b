/* The command table and what every cmd_<name>.c shares. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stdio.h>

#include "util/error.h"

struct pipefile;

struct cli {
	const char *pipefile_path; /* --pipefile, $PIPEFILE, or "Pipefile" */
	int argc;		   /* the command's own arguments */
	char **argv;		   /* argv[0] is the command name */
};

struct command {
	const char *name;
	int (*fn)(struct cli *cli);
	const char *usage;   /* "pipe dag [--dot|--mermaid]" */
	const char *summary; /* one line for `pipe --help` */
	const char *help;    /* the rest, for `pipe help CMD` */
};

extern const struct command commands[];

/* The global options, for `pipe --help` and the man page. */
struct cli_option {
	const char *name; /* "--pipefile PATH" */
	const char *help;
};
extern const struct cli_option cli_global_options[];

/* What `pipe --help` opens with, shared with the man page. */
extern const char cli_version[];     /* "0.1.0" */
extern const char cli_summary[];     /* the one-line NAME */
extern const char cli_synopsis[];    /* "pipe [-q|-v] ..." */
extern const char cli_description[]; /* a sentence or two */
const struct command *cli_find_command(const char *name);

/* Print the error and return its exit code. */
int cli_fail(struct error *err);

/* Print "pipe: error: MSG" and a usage hint for cmd; returns EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int cli_usage_error(const struct cli *cli,
							  const char *fmt, ...);

/* Load the Pipefile named by cli (through .pipe/pipefile.cache beside it,
 * as engine_open does); on error prints it and returns its exit code
 * (> 0); 0 on success. */
int cli_load_pipefile(const struct cli *cli, struct pipefile **out);

/* For a command that writes the workspace under the lock (checkout, gc):
 * a terminating signal no longer stops it halfway; it finishes, then pipe
 * exits 128 + the signal. A second signal stops it at once. (`pipe run`
 * stops its stages instead: engine_run.) */
void cli_hold_signals(void);

/* Parse a non-negative integer option value; -1 when it is not one. */
long cli_parse_count(const char *s);

/* The pipe(1) man page in roff (cli/man.c); returns the exit code. */
int cli_print_man(FILE *fp);

/* pipe pull's work, for pipe run --pull (cli/cmd_remote.c): prints the
 * summary; -1 with err set on failure. */
struct store;
int cli_remote_pull(struct store *st, const char *spec, int jobs,
		    const char *endpoint, struct error *err);

#define DECLARE_CMD(name) int cmd_##name(struct cli *cli)
DECLARE_CMD(init);
DECLARE_CMD(validate);
DECLARE_CMD(dag);
DECLARE_CMD(run);
DECLARE_CMD(status);
DECLARE_CMD(jobs);
DECLARE_CMD(logs);
DECLARE_CMD(log);
DECLARE_CMD(inspect);
DECLARE_CMD(get);
DECLARE_CMD(checkout);
DECLARE_CMD(gc);
DECLARE_CMD(push);
DECLARE_CMD(pull);
DECLARE_CMD(reproduce);

DECLARE_CMD(help);

#endif
