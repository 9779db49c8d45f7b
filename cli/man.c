/* The pipe(1) man page, made from the same command table and option list
 * as `pipe help` (`pipe help --man`; the build writes build/pipe.1 with
 * it), so the manual cannot drift from the program. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

/* Writes n bytes of text for roff: backslashes doubled, a line that would
 * start with '.' or '\'' guarded, '-' as the minus sign of options. */
static void roff_text(FILE *fp, const char *s, size_t n, int at_bol)
{
	for (size_t i = 0; i < n; i++) {
		if (at_bol && (s[i] == '.' || s[i] == '\''))
			fputs("\\&", fp);
		at_bol = s[i] == '\n';
		if (s[i] == '\\')
			fputs("\\e", fp);
		else if (s[i] == '-')
			fputs("\\-", fp);
		else
			fputc(s[i], fp);
	}
}

static void roff_str(FILE *fp, const char *s)
{
	roff_text(fp, s, strlen(s), 1);
}

/* "  -n, --dry-run   what it does": a tagged paragraph, the option in
 * bold. The option ends at the first run of two spaces. */
static void option_line(FILE *fp, const char *line, size_t len)
{
	const char *p = line, *end = line + len, *gap;

	while (p < end && *p == ' ')
		p++;
	for (gap = p; gap + 1 < end && !(gap[0] == ' ' && gap[1] == ' ');)
		gap++;
	if (gap + 1 >= end)
		gap = end;
	fputs(".TP\n.B ", fp);
	roff_text(fp, p, (size_t)(gap - p), 0);
	fputc('\n', fp);
	while (gap < end && *gap == ' ')
		gap++;
	roff_text(fp, gap, (size_t)(end - gap), 1);
	fputc('\n', fp);
}

/* A command's help: paragraphs split at blank lines; indented lines are
 * option lists, the rest running text. */
static void help_text(FILE *fp, const char *s)
{
	int para = 1;

	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);

		if (!len) {
			para = 1;
		} else if (s[0] == ' ') {
			option_line(fp, s, len);
			para = 1;
		} else {
			if (para)
				fputs(".PP\n", fp);
			para = 0;
			roff_text(fp, s, len, 1);
			fputc('\n', fp);
		}
		s += len + (nl ? 1 : 0);
	}
}

/* What only a manual says: exit codes, environment, files. */
static const char man_tail[] =
	".SH EXIT STATUS\n"
	".TP\n.B 0\nsuccess; every stage asked for is up to date\n"
	".TP\n.B 1\na stage failed (status: something is stale)\n"
	".TP\n.B 2\nbad usage or a bad Pipefile\n"
	".TP\n.B 3\nthe environment: workspace locked, Docker daemon down\n"
	".TP\n.B 130\ninterrupted\n"
	".SH ENVIRONMENT\n"
	".TP\n.B PIPEFILE\nthe Pipefile, when \\-\\-pipefile is not given\n"
	".TP\n.B DOCKER_HOST\nthe Docker daemon's socket "
	"(unix://PATH; default /var/run/docker.sock)\n"
	".TP\n.B PIPE_TRACE_PERFORMANCE\n"
	"set to 1: how long each phase took and the peak RSS after it, "
	"on stderr\n"
	".SH FILES\n"
	".TP\n.B Pipefile\nthe stages (YAML), in the workspace's top folder\n"
	".TP\n.B .pipe/\npipe's state: state, statcache, pipefile.cache, "
	"jobs, logs/, lock, and the store (a bare git repository, "
	"git \\-\\-git\\-dir .pipe/store log refs/pipe/stages/STAGE)\n";

int cli_print_man(FILE *fp)
{
	fprintf(fp, ".TH PIPE 1 \"\" \"pipe %s\" \"User Commands\"\n",
		cli_version);
	fputs(".SH NAME\npipe \\- ", fp);
	roff_str(fp, cli_summary);
	fputs("\n.SH SYNOPSIS\n", fp);
	roff_str(fp, cli_synopsis);
	fputs("\n.SH DESCRIPTION\n", fp);
	roff_str(fp, cli_description);
	fputs("\n.SH COMMANDS\n", fp);
	for (const struct command *c = commands; c->name; c++) {
		fputs(".SS \"", fp);
		roff_str(fp, c->usage);
		fputs("\"\n", fp);
		roff_str(fp, c->summary);
		fputc('\n', fp);
		if (c->help)
			help_text(fp, c->help);
	}
	fputs(".SH OPTIONS\n", fp);
	for (const struct cli_option *o = cli_global_options; o->name; o++) {
		fputs(".TP\n.B ", fp);
		roff_str(fp, o->name);
		fputc('\n', fp);
		roff_str(fp, o->help);
		fputc('\n', fp);
	}
	fputs(man_tail, fp);
	return ferror(fp) ? EXIT_ENV : EXIT_OK;
}
