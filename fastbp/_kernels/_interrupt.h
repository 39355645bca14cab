/* Ctrl-C during a compiled epoch: stop after the current mini-batch.
 *
 * A compiled epoch runs without the GIL, so Python's own SIGINT handler cannot
 * raise KeyboardInterrupt until it returns (an epoch can take seconds).
 * fb_interrupt_install() (main thread, with the GIL, around the compiled calls
 * of a fit) puts this handler in place of the previous one; it only sets
 * fb_interrupt_flag, which the epoch loops read between mini-batches. The
 * caller then raises from Python (fastbp.training) and puts the previous
 * handler back with fb_interrupt_remove(). Installs nest (a counter): only the
 * outermost install and remove touch the process's handler.
 */
#ifndef FASTBP_INTERRUPT_H
#define FASTBP_INTERRUPT_H

#include <signal.h>

static volatile sig_atomic_t fb_interrupt_flag = 0;
static int fb_interrupt_depth = 0;

static void fb_interrupt_handler(int sig) {
    (void)sig;
    fb_interrupt_flag = 1;
}

#if defined(_WIN32)
static void (*fb_interrupt_previous)(int) = SIG_DFL;

static int fb_interrupt_install(void) {
    if (fb_interrupt_depth++ > 0) return 0;
    fb_interrupt_flag = 0;
    fb_interrupt_previous = signal(SIGINT, fb_interrupt_handler);
    if (fb_interrupt_previous == SIG_ERR) { fb_interrupt_depth = 0; return -1; }
    if (fb_interrupt_previous == SIG_IGN) signal(SIGINT, SIG_IGN);  /* ignored stays ignored */
    return 0;
}

static void fb_interrupt_remove(void) {
    if (fb_interrupt_depth == 0 || --fb_interrupt_depth > 0) return;
    signal(SIGINT, fb_interrupt_previous);
}
#else
static struct sigaction fb_interrupt_previous;

static int fb_interrupt_install(void) {
    struct sigaction sa;
    if (fb_interrupt_depth++ > 0) return 0;
    fb_interrupt_flag = 0;
    if (sigaction(SIGINT, NULL, &fb_interrupt_previous) != 0) { fb_interrupt_depth = 0; return -1; }
    if (!(fb_interrupt_previous.sa_flags & SA_SIGINFO)
            && fb_interrupt_previous.sa_handler == SIG_IGN) return 0;  /* ignored stays ignored */
    sa.sa_handler = fb_interrupt_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) != 0) { fb_interrupt_depth = 0; return -1; }
    return 0;
}

static void fb_interrupt_remove(void) {
    if (fb_interrupt_depth == 0 || --fb_interrupt_depth > 0) return;
    sigaction(SIGINT, &fb_interrupt_previous, NULL);
}
#endif

static int fb_interrupt_pending(void) { return fb_interrupt_flag != 0; }
static void fb_interrupt_clear(void) { fb_interrupt_flag = 0; }

#endif
