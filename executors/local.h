/* Helpers of the local executor (executors/local.c), exported for tests. */
#ifndef EXECUTORS_LOCAL_H
#define EXECUTORS_LOCAL_H

#include <stddef.h>

#include "util/strbuf.h"
#include "util/strvec.h"

/* Split cmd on blanks into argv when /bin/sh would run it the same way (no
 * quoting, expansion, redirection, assignment, keyword or builtin), as make
 * does. Returns 1 with the words pushed to argv, or 0 (argv untouched) when
 * cmd needs /bin/sh -c. */
int local_split_command(const char *cmd, struct strvec *argv);

/* Stream mode: append each complete line of pending + data to out as
 * prefix + line + '\n'; what follows the last newline stays in pending. A
 * pending line longer than 64 KiB is cut and emitted as a line of its own. */
void local_prefix_lines(struct strbuf *out, struct strbuf *pending,
			const char *prefix, const char *data, size_t len);

/* Emit what is left in pending (a last line without '\n') as a line. */
void local_prefix_flush(struct strbuf *out, struct strbuf *pending,
			const char *prefix);

/* "250ms", "1.5s", "30s", "2m", "1h5m": how timeouts are named in messages. */
void local_format_duration(struct strbuf *out, long long ms);

/* Tests only: stop using pidfd_open (as on kernels before 5.3), so that the
 * fallback (waitpid(WNOHANG) on short poll timeouts) is exercised. */
void local_disable_pidfd(int disable);

#endif
