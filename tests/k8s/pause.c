/* The test node's pause (sandbox) container: sleeps until SIGTERM or SIGINT,
 * reaps children. */
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
static void bye(int s)
{
	(void)s;
	_exit(0);
}
static void reap(int s)
{
	(void)s;
	while (waitpid(-1, 0, WNOHANG) > 0)
		;
}
int main(void)
{
	signal(SIGTERM, bye);
	signal(SIGINT, bye);
	signal(SIGCHLD, reap);
	for (;;)
		pause();
}
