/* JSON output for --json (built through executors/json.h). */
#ifndef CLI_JSON_H
#define CLI_JSON_H

#include <stddef.h>

struct engine;
struct stage_status;

/* {"stages":[{"name","state","reasons":[{"kind","path","old","new",
 * "message"}]}]} on stdout. */
void cli_json_status(const struct engine *e, const struct stage_status *v,
		     size_t nr);

struct job_rec;

/* [{"id","stage","commit","started","duration_ms","datums":{"processed",
 * "skipped","total"},"bytes_in","bytes_out","state"}] on stdout, newest
 * first. */
void cli_json_jobs(const struct job_rec *v, size_t nr);

#endif
