/* pipe push REMOTE / pipe pull REMOTE: the store to and from a git remote
 * or S3 (remote/remote.h). */
#include "cli/cli.h"
#include "engine/engine.h"
#include "remote/remote.h"
#include "store/store.h"
#include "util/log.h"
#include "util/strbuf.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void human(unsigned long long n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(*units)) {
		v /= 1024;
		u++;
	}
	if (!u)
		snprintf(buf, len, "%llu B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

/* The summary line on stderr (not with -q), or one JSON object on
 * stdout. */
static void summary(const char *verb, const char *spec,
		    const struct remote_stats *s, int json)
{
	struct strbuf sb = STRBUF_INIT;
	char size[32];

	human(s->bytes, size, sizeof(size));
	if (json) {
		printf("{\"version\":1,\"command\":\"%s\",\"refs\":%zu,"
		       "\"objects\":%zu,\"files\":%zu,\"bytes\":%llu,"
		       "\"requests\":%ld}\n",
		       verb, s->refs, s->objects, s->files, s->bytes,
		       s->requests);
		return;
	}
	if (!s->refs && !s->files) {
		log_info("nothing to %s", verb);
		return;
	}
	strbuf_addf(&sb, "%sed %zu refs", verb, s->refs);
	if (s->objects)
		strbuf_addf(&sb, " (%zu objects)", s->objects);
	log_info("%s, %zu files (%s) %s %s", sb.buf, s->files, size,
		 !strcmp(verb, "push") ? "to" : "from", spec);
	strbuf_release(&sb);
}

int cli_remote_pull(struct store *st, const char *spec, int jobs,
		    const char *endpoint, struct error *err)
{
	struct remote_opts o = {endpoint, jobs};
	struct remote_stats s;

	if (remote_pull(st, spec, &o, &s, err))
		return -1;
	summary("pull", spec, &s, 0);
	return 0;
}

static int remote_cmd(struct cli *cli, int push)
{
	struct engine_options eo = {.write = 1, .command = cli->argv[0]};
	struct remote_opts o = {0};
	struct remote_stats s;
	struct error err = ERROR_INIT;
	struct engine *e = NULL;
	struct store *st = NULL;
	const char *spec = NULL;
	int json = 0, rc;

	for (int i = 1; i < cli->argc; i++) {
		const char *a = cli->argv[i];

		if (!strcmp(a, "--json")) {
			json = 1;
		} else if (!strcmp(a, "--wait")) {
			eo.wait_lock = 1;
		} else if (!strcmp(a, "-j") || !strcmp(a, "--jobs")) {
			long n = i + 1 < cli->argc
					 ? cli_parse_count(cli->argv[++i])
					 : -1;

			if (n < 1 || n > 1024)
				return cli_usage_error(
					cli, "%s needs a number from 1 to 1024",
					a);
			o.jobs = (int)n;
		} else if (!strcmp(a, "--endpoint")) {
			if (i + 1 >= cli->argc || !*cli->argv[i + 1])
				return cli_usage_error(
					cli, "--endpoint needs a URL");
			o.endpoint = cli->argv[++i];
		} else if (a[0] == '-' && a[1]) {
			return cli_usage_error(cli, "unknown option '%s'", a);
		} else if (spec) {
			return cli_usage_error(cli, "one REMOTE only, not '%s'",
					       a);
		} else {
			spec = a;
		}
	}
	if (!spec)
		return cli_usage_error(cli,
				       "name the remote: pipe %s REMOTE "
				       "(a git remote, path or URL, or "
				       "s3://bucket/prefix)",
				       cli->argv[0]);
	if (engine_open(&e, cli->pipefile_path, &eo, &err) ||
	    engine_store(e, &st, &err)) {
		rc = cli_fail(&err);
		goto out;
	}
	rc = push ? remote_push(st, spec, &o, &s, &err)
		  : remote_pull(st, spec, &o, &s, &err);
	if (rc) {
		rc = cli_fail(&err);
		goto out;
	}
	summary(push ? "push" : "pull", spec, &s, json);
out:
	engine_close(e);
	return rc;
}

int cmd_push(struct cli *cli)
{
	return remote_cmd(cli, 1);
}

int cmd_pull(struct cli *cli)
{
	return remote_cmd(cli, 0);
}
