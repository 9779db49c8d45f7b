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

/* Tests only: stop using pidfd_open (as on kernels before 5.3), so that the
 * fallback (waitpid(WNOHANG) on short poll timeouts) is exercised. */
void local_disable_pidfd(int disable);

#endif
